//! The customer list, page by page: continuation tokens, a spent token read again from the
//! first page, and the checks that stop a list going round in circles.

use std::collections::{HashMap, HashSet};

use crate::domain::error::ChainExt as _;
use crate::domain::model::CustomerId;
use crate::engine::pool::Feeder;
use crate::partner_center::api;
use crate::partner_center::client::{new_uuid, Client, Exchange, Reply};
use crate::partner_center::customers::{self, ListedCustomer, NextPage, Page};

/// Empty pages with a next link in a row before the list is deemed to go round in circles.
const MAX_EMPTY_PAGES: u32 = 10;

/// The most pages one reading of the list may take: twice what its count allows, and ten more
/// for customers added meanwhile. The count is the first page's `totalCount` when that exceeds
/// the page (the list's total), otherwise the customers listed so far (some answers count only
/// the page): pages that bring few new customers run into it either way. `page` is the
/// smallest page seen, so a service that shortens its pages gets room for more of them.
fn page_cap(total: Option<u64>, listed: u64, page: u64) -> u64 {
    total
        .unwrap_or(listed)
        .div_ceil(page.max(1))
        .saturating_mul(2)
        .saturating_add(10)
}

/// The first page's `totalCount` when it counts more than the page: then it is the list's.
fn list_total(first: &Page) -> Option<u64> {
    let len = u64::try_from(first.customers.len()).ok()?;
    first.total.filter(|&total| total > len)
}

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
        .send_capped(&request, new_uuid(), &headers, customers::MAX_PAGE_BYTES)
        .await;
    let body = answer_body(&exchange, "GET /v1/customers").map_err(|reason| {
        let spent = next.is_some()
            && exchange.attempts >= 2
            && matches!(&exchange.reply, Reply::Answer { status: 400, body }
                if api::parse_error_body(body).code.as_deref() == Some(INVALID_CONTINUATION));
        if spent {
            PageError::TokenSpent(reason)
        } else {
            PageError::Failed(reason)
        }
    })?;
    Ok(customers::parse_page(body)?)
}

/// The body of a 2xx answer to `what`, or why there is none (the service's error with its code,
/// or no answer), as text for the summary or one results cell.
pub(super) fn answer_body<'a>(exchange: &'a Exchange, what: &str) -> Result<&'a [u8], String> {
    let attempts = exchange.attempts;
    match &exchange.reply {
        Reply::Answer { status, body } if (200..300).contains(status) => Ok(body),
        Reply::Answer { status, body } => {
            let error = api::parse_error_body(body);
            let code = error
                .code
                .map(|c| format!(" (code {c})"))
                .unwrap_or_default();
            let message = error.message.map(|m| format!(": {m}")).unwrap_or_default();
            Err(format!(
                "{what} answered {status}{code}{message} after {attempts} attempt(s)"
            ))
        }
        Reply::Transport(reason) | Reply::Token(reason) | Reply::Stopped(reason) => Err(format!(
            "{} (after {attempts} attempt(s))",
            api::sanitize(reason)
        )),
    }
}

/// The id a customer's rows carry, which also tells it from the others in the list: its GUID in
/// lower case, or the id as given when it is not a GUID (that text never reads as a GUID).
pub(super) fn listed_id(customer: &ListedCustomer) -> String {
    customer
        .parsed
        .map_or_else(|| customer.id.clone(), |id| id.to_lower_string())
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
    feeder: Feeder<ListedCustomer, super::CustomerRows>,
) -> ListEnd {
    let mut end = ListEnd {
        pages: 1,
        error: None,
    };
    let mut total = list_total(&first);
    let mut page = first;
    // Pages read in this pass, the smallest of them, and the continuation tokens handed out.
    let (mut pass_pages, mut smallest) = (1u64, u64::MAX);
    let mut tokens: HashSet<String> = HashSet::new();
    let mut listed = 0u64;
    let mut empty_in_a_row = 0u32;
    // Customer -> the pass (0, then 1 after the first restart, ...) it was last seen on.
    let mut seen: HashMap<String, u32> = HashMap::new();
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
                .all(|c| seen.get(&listed_id(c)) == Some(&pass))
        {
            end.error = Some(format!(
                "page {} of the customer list holds only customers already listed on earlier pages; the list goes round in circles, stopped following it",
                end.pages
            ));
            return end;
        }
        if let Ok(len @ 1..) = u64::try_from(page.customers.len()) {
            smallest = smallest.min(len);
        }
        for customer in page.customers {
            if feeder.halted() {
                return end;
            }
            if seen.insert(listed_id(&customer), pass).is_some() {
                // Fed already (earlier in this pass, or before a restart).
                continue;
            }
            listed += 1;
            if customer.parsed.is_some_and(|id| done.contains(&id)) {
                // Already in the file from the run being resumed.
                continue;
            }
            if feeder.work.send(customer).await.is_err() {
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
        if next
            .token
            .as_ref()
            .is_some_and(|t| !tokens.insert(t.clone()))
        {
            end.error = Some(format!(
                "page {} of the customer list hands back a continuation token an earlier page gave; the list goes round in circles, stopped following it ({listed} customers listed)",
                end.pages
            ));
            return end;
        }
        let cap = page_cap(total, listed, smallest);
        if pass_pages >= cap {
            end.error = Some(format!(
                "the customer list has taken {pass_pages} pages, more than its counts allow ({cap}); it goes round in circles, stopped following it ({listed} customers listed)"
            ));
            return end;
        }
        let mut fetched = tokio::select! {
            biased;
            _ = feeder.stop.wait() => return end,
            fetched = fetch_page(client, Some(&next)) => fetched,
        };
        if let Err(PageError::TokenSpent(reason)) = &fetched {
            if pass < MAX_RESTARTS {
                pass += 1;
                // The count starts again from the new first page.
                (pass_pages, smallest) = (0, u64::MAX);
                tokens.clear();
                tracing::warn!(
                    page = end.pages + 1,
                    %reason,
                    "the service spent the continuation token on an answer that was lost; reading the customer list again from its first page (customers already listed are skipped)"
                );
                fetched = tokio::select! {
                    biased;
                    _ = feeder.stop.wait() => return end,
                    fetched = fetch_page(client, None) => fetched,
                };
            }
        }
        match fetched {
            Ok(next_page) => {
                end.pages += 1;
                pass_pages += 1;
                if pass_pages == 1 {
                    total = list_total(&next_page);
                }
                page = next_page;
            }
            Err(error) => {
                let reason = error.chain();
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
