//! Partner Center: the wire shapes ([`api`], [`customers`]), sign-in ([`auth`], [`login`]), and
//! the [`client`] that sends one logical call, paced by the [`throttle`] (whose rate the [`pacer`]
//! decides), retried per [`retry`], and stopped for the whole run by [`fatal`].

mod error;
pub use error::PartnerCenterError;

pub(crate) mod api;
pub(crate) mod auth;
pub mod client;
pub mod cloud;
pub(crate) mod customers;
pub(crate) mod fatal;
pub(crate) mod http;
pub(crate) mod login;
pub(crate) mod pacer;
pub(crate) mod retry;
pub(crate) mod throttle;
