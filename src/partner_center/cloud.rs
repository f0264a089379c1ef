//! Which Partner Center, and where: the clouds' endpoints and the checks every URL setting passes.

use std::net::IpAddr;

use crate::partner_center::PartnerCenterError;
use serde::Deserialize;

/// The production Partner Center API.
pub const DEFAULT_BASE_URL: &str = "https://api.partnercenter.microsoft.com";
/// The Microsoft Entra ID authority that redeems refresh tokens.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// Partner Center operated by 21Vianet: API base and token resource (one URL for both).
pub const CHINA_BASE_URL: &str = "https://partner.partnercenterapi.microsoftonline.cn";
/// The Microsoft Entra ID authority of the China cloud.
pub const CHINA_AUTHORITY: &str = "https://login.chinacloudapi.cn";
/// The Microsoft Entra ID authority of the US Government cloud (the PowerShell module's
/// `AzureUSGovernment` environment, which keeps the public Partner Center endpoint and resource).
pub const USGOV_AUTHORITY: &str = "https://login.microsoftonline.us";

/// Which Partner Center the commands talk to; sets base URL, authority and token resource
/// together (the values of the Partner Center PowerShell module's environments).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cloud {
    /// The worldwide service (api.partnercenter.microsoft.com, login.microsoftonline.com).
    #[default]
    Public,
    /// The China cloud operated by 21Vianet (partner.partnercenterapi.microsoftonline.cn,
    /// login.chinacloudapi.cn).
    China,
    /// Partner accounts in the US Government cloud: the public Partner Center API and resource,
    /// signed in at login.microsoftonline.us.
    #[value(name = "usgov")]
    #[serde(rename = "usgov")]
    UsGov,
}

impl Cloud {
    /// The Partner Center API base URL.
    pub fn base_url(self) -> &'static str {
        match self {
            Cloud::Public | Cloud::UsGov => DEFAULT_BASE_URL,
            Cloud::China => CHINA_BASE_URL,
        }
    }

    /// The Microsoft Entra ID authority.
    pub fn authority(self) -> &'static str {
        match self {
            Cloud::Public => DEFAULT_AUTHORITY,
            Cloud::China => CHINA_AUTHORITY,
            Cloud::UsGov => USGOV_AUTHORITY,
        }
    }

    /// The resource Partner Center tokens are issued for (v1 `resource`, v2 scope prefix).
    pub fn resource(self) -> &'static str {
        match self {
            Cloud::Public | Cloud::UsGov => crate::partner_center::auth::RESOURCE,
            Cloud::China => CHINA_BASE_URL,
        }
    }
}

/// Whether `url` parses and names this machine (`localhost`, 127.0.0.0/8, `::1`): the sandbox.
pub fn is_loopback(url: &str) -> bool {
    let url = reqwest::Url::parse(url);
    let host = url.as_ref().ok().and_then(|url| url.host_str());
    host.is_some_and(|host| {
        host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

/// Accepts `https://` anywhere and `http://` only for loopback hosts; returns it without a trailing `/`.
pub fn checked_url(what: &str, text: &str) -> Result<String, PartnerCenterError> {
    let url = reqwest::Url::parse(text.trim()).map_err(|source| PartnerCenterError::BadUrl {
        what: what.to_string(),
        text: text.to_string(),
        source,
    })?;
    let problem = match url.scheme() {
        "https" if url.host().is_some() => None,
        "http" if is_loopback(text.trim()) => None,
        "http" => Some("plain http:// is refused except to a loopback address (use https://)"),
        _ => Some("expected an https:// URL"),
    };
    let extra = url.query().is_some() || url.fragment().is_some();
    if let Some(problem) = problem.or(extra.then_some("must not carry a query or fragment")) {
        return Err(PartnerCenterError::Config(format!(
            "{what}: {problem}; got {text}"
        )));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}
