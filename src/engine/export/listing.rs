//! The customer list, page by page: continuation tokens, a spent token read again from the
//! first page, and the checks that stop a list going round in circles.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::domain::model::CustomerId;
use crate::engine::pool::Stop;
use crate::partner_center::api;
use crate::partner_center::client::{Client, Reply};
use crate::partner_center::customers::{self, ListedCustomer, NextPage, Page};

/// Empty pages with a next link in a row before the list is deemed to go round in circles.
const MAX_EMPTY_PAGES: u32 = 10;

/// How the page reader ended.
#[derive(Default)]
pub(super) struct ListEnd {
    pub(super) pages: u64,
    pub(super) error: Option<String>,
}

/// Why a page could not be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum PageError {
    /// A resend was refused with code 2000: the service spent the token on an attempt whose
    /// answer was lost (cut off, timed out) and does not replay the page. The list can only be
    /// read again from its first page.
    #[error("{0}")]
    TokenSpent(String),
    /// The service answered with an error, or did not answer (the reason says which).
    #[error("{0}")]
    Failed(String),
    /// The page or its next link is unusable.
    #[error(transparent)]
    List(#[from] customers::ListError),
}

impl PageError {
    /// The reason with its causes, for the summary and the log.
    pub(super) fn reason(&self) -> String {
        crate::domain::error::chain(self)
    }
}

/// The error code for an unknown or spent continuation token.
pub(super) const INVALID_CONTINUATION: &str = "2000";

/// Most times one export reads the list again from its first page after a spent token.
pub(super) const MAX_RESTARTS: u32 = 3;

/// Reads one page (the first when `next` is `None`), through the pool's pacer and retries.
pub(super) async fn fetch_page(
    client: &Client,
    next: Option<&NextPage>,
) -> Result<Page, PageError> {
    let (request, headers) = match next {
        None => (
            customers::first_page_request(customers::PAGE_SIZE),
            Vec::new(),
        ),
        Some(next) => next.request()?,
    };
    let exchange = client
        .send_capped(
            &request,
            crate::partner_center::client::new_uuid(),
            &headers,
            customers::MAX_PAGE_BYTES,
        )
        .await;
    match &exchange.reply {
        Reply::Answer { status, body } if (200..300).contains(status) => {
            customers::parse_page(body).map_err(PageError::from)
        }
        Reply::Answer { status, body } => {
            let reason = answer_error("GET /v1/customers", *status, body, exchange.attempts);
            let spent = next.is_some()
                && exchange.attempts >= 2
                && *status == 400
                && api::parse_error_body(body).code.as_deref() == Some(INVALID_CONTINUATION);
            Err(if spent {
                PageError::TokenSpent(reason)
            } else {
                PageError::Failed(reason)
            })
        }
        Reply::Transport(reason) | Reply::Token(reason) | Reply::Stopped(reason) => {
            Err(PageError::Failed(format!(
                "{} (after {} attempt(s))",
                api::sanitize(reason),
                exchange.attempts
            )))
        }
    }
}

pub(super) fn answer_error(what: &str, status: u16, body: &[u8], attempts: u32) -> String {
    let error = api::parse_error_body(body);
    let code = error
        .code
        .map(|c| format!(" (code {c})"))
        .unwrap_or_default();
    let message = error.message.map(|m| format!(": {m}")).unwrap_or_default();
    format!("{what} answered {status}{code}{message} after {attempts} attempt(s)")
}

/// A customer as the page reader tells it from the others: by GUID, or by the id as given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum ListedKey {
    Id(CustomerId),
    Raw(String),
}

impl ListedKey {
    fn of(customer: &ListedCustomer) -> Self {
        customer
            .parsed
            .map_or_else(|| ListedKey::Raw(customer.id.clone()), ListedKey::Id)
    }
}

/// Feeds the customers of `page` and of every later page to the workers. The channel is
/// bounded, so the next page is read only once the workers have room for its customers.
///
/// Each customer is fed once: the ids listed so far are kept (an id and a pass number each),
/// so a list read again from its first page (after a spent token) skips what it already fed,
/// and a page holding only customers already listed in this pass (a service going round in
/// circles) ends the listing with an error instead of writing them again.
pub(super) async fn list_customers(
    client: &Client,
    first: Page,
    done: &HashSet<CustomerId>,
    work_tx: async_channel::Sender<ListedCustomer>,
    stop: &Stop,
    aborted: &AtomicBool,
) -> ListEnd {
    let mut end = ListEnd {
        pages: 1,
        error: None,
    };
    let mut page = first;
    let mut listed = 0u64;
    let mut empty_in_a_row = 0u32;
    // Customer -> the pass (0, then 1 after the first restart, ...) it was last seen on.
    let mut seen: HashMap<ListedKey, u32> = HashMap::new();
    let mut pass = 0u32;
    loop {
        empty_in_a_row = if page.customers.is_empty() {
            empty_in_a_row + 1
        } else {
            0
        };
        if !page.customers.is_empty()
            && page
                .customers
                .iter()
                .all(|c| seen.get(&ListedKey::of(c)) == Some(&pass))
        {
            end.error = Some(format!(
                "page {} of the customer list holds only customers already listed on earlier pages; the list goes round in circles, stopped following it",
                end.pages
            ));
            return end;
        }
        for customer in page.customers {
            if stop.requested() || aborted.load(Ordering::Relaxed) {
                return end;
            }
            if seen.insert(ListedKey::of(&customer), pass).is_some() {
                // Fed already (earlier in this pass, or before a restart).
                continue;
            }
            listed += 1;
            if customer.parsed.is_some_and(|id| done.contains(&id)) {
                // Already in the file from the run being resumed.
                continue;
            }
            if work_tx.send(customer).await.is_err() {
                return end;
            }
        }
        tracing::info!(
            page = end.pages,
            customers = listed,
            "customer list page read"
        );
        let Some(next) = page.next else {
            return end;
        };
        if empty_in_a_row >= MAX_EMPTY_PAGES {
            end.error = Some(format!(
                "the customer list returned {empty_in_a_row} empty pages in a row, each with a next link; stopped following it"
            ));
            return end;
        }
        let mut fetched = tokio::select! {
            biased;
            _ = stop.wait() => return end,
            fetched = fetch_page(client, Some(&next)) => fetched,
        };
        if let Err(PageError::TokenSpent(reason)) = &fetched {
            if pass < MAX_RESTARTS {
                pass += 1;
                tracing::warn!(
                    page = end.pages + 1,
                    %reason,
                    "the service spent the continuation token on an answer that was lost; reading the customer list again from its first page (customers already listed are skipped)"
                );
                fetched = tokio::select! {
                    biased;
                    _ = stop.wait() => return end,
                    fetched = fetch_page(client, None) => fetched,
                };
            }
        }
        match fetched {
            Ok(next_page) => {
                end.pages += 1;
                page = next_page;
            }
            Err(error) => {
                let reason = error.reason();
                tracing::error!(page = end.pages + 1, %reason, "customer list page not read");
                end.error = Some(format!(
                    "page {} of the customer list could not be read ({listed} customers listed before it): {reason}",
                    end.pages + 1
                ));
                return end;
            }
        }
    }
}
