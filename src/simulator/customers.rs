//! The partner's customer list, `GET /v1/customers`, with the service's seek-based paging: a page
//! size cap, `links.next` relative to `/v1`, and single-use `MS-ContinuationToken`s.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

use super::parse::form_decode;
use super::routes::pc_error;
use super::state::{lock, Shared};
use super::{FaultAction, PreloadEntry, PreloadState};
use crate::domain::model::CustomerId;

/// Largest page the simulated list returns when the configuration leaves it at 0. Microsoft does
/// not publish the real cap; what matters is that a client asking for more gets fewer and pages.
pub const DEFAULT_PAGE_CAP: usize = 100;

/// The error code the simulator answers an unknown, spent or missing continuation token with.
const INVALID_CONTINUATION: u32 = 2000;

/// The name of the continuation header (sent and read case-insensitively).
const CONTINUATION_HEADER: &str = "MS-ContinuationToken";

/// How long a page served for a (token, `MS-RequestId`) is answered again to a resend of that
/// call. Partner Center keys idempotency on `MS-RequestId`: a client whose answer was cut off or
/// timed out resends the same request with the same id, and must not find its token spent.
const REPLAY_FOR: Duration = Duration::from_secs(300);

/// At most this many served pages are remembered (the oldest are forgotten first).
const REPLAY_MAX: usize = 1024;

/// A page served for a continuation token, kept for a resend of the same call.
struct Served {
    token: String,
    request_id: String,
    at: Instant,
    body: Bytes,
}

/// One customer of the partner as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerProfile {
    /// The customer tenant.
    pub customer_id: CustomerId,
    /// `companyProfile.companyName`.
    pub company_name: String,
    /// `companyProfile.domain`.
    pub domain: String,
}

impl CustomerProfile {
    /// A profile with a name and domain made up from the id (stable, so outputs are reproducible).
    pub fn generated(customer_id: CustomerId) -> Self {
        let short = customer_id.to_lower_string();
        let short = short.rsplit('-').next().unwrap_or_default().to_string();
        CustomerProfile {
            customer_id,
            company_name: format!("Customer {short}"),
            domain: format!("customer{short}.onmicrosoft.com"),
        }
    }
}

/// The listed customers, the page cap, the tokens handed out, and scripted list faults.
pub(crate) struct Directory {
    list: Vec<CustomerProfile>,
    cap: usize,
    /// Continuation token -> offset of the page it continues at. Removed when used.
    tokens: Mutex<HashMap<String, usize>>,
    /// Pages served for a (token, request id), oldest first: answered again to a resend.
    served: Mutex<VecDeque<Served>>,
    /// Answers for the next list requests, consumed in order.
    faults: Mutex<VecDeque<FaultAction>>,
}

impl Directory {
    /// Every customer the preload holds something for (not the missing or unrelated ones), then
    /// the explicit profiles; a profile also names a preloaded customer.
    pub fn new(
        preload: &[PreloadEntry],
        profiles: Vec<CustomerProfile>,
        cap: usize,
        faults: Vec<FaultAction>,
    ) -> Self {
        let mut order: Vec<CustomerId> = Vec::new();
        let mut seen = HashSet::new();
        for entry in preload {
            if matches!(entry.state, PreloadState::Holds(_)) && seen.insert(entry.customer_id) {
                order.push(entry.customer_id);
            }
        }
        let mut named: HashMap<CustomerId, CustomerProfile> = HashMap::new();
        for profile in profiles {
            if seen.insert(profile.customer_id) {
                order.push(profile.customer_id);
            }
            named.entry(profile.customer_id).or_insert(profile);
        }
        let list = order
            .into_iter()
            .map(|id| {
                named
                    .remove(&id)
                    .unwrap_or_else(|| CustomerProfile::generated(id))
            })
            .collect();
        Directory {
            list,
            cap: if cap == 0 { DEFAULT_PAGE_CAP } else { cap },
            tokens: Mutex::new(HashMap::new()),
            served: Mutex::new(VecDeque::new()),
            faults: Mutex::new(faults.into()),
        }
    }

    /// Hands out a token that continues at `offset`.
    fn issue(&self, offset: usize) -> String {
        // Shaped like the service's (commas, `/`, `=`), so a client must carry it verbatim.
        let token = format!(
            "{},{}/{}=",
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4().simple(),
            offset
        );
        lock(&self.tokens).insert(token.clone(), offset);
        token
    }

    /// Spends a token: the offset it continues at, or `None` when unknown or already used.
    fn redeem(&self, token: &str) -> Option<usize> {
        lock(&self.tokens).remove(token)
    }

    /// Remembers the page served for `token` to the call `request_id`.
    fn remember(&self, token: &str, request_id: &str, body: Bytes) {
        let mut served = lock(&self.served);
        let now = Instant::now();
        while served
            .front()
            .is_some_and(|s| served.len() >= REPLAY_MAX || now.duration_since(s.at) > REPLAY_FOR)
        {
            served.pop_front();
        }
        served.push_back(Served {
            token: token.to_string(),
            request_id: request_id.to_string(),
            at: now,
            body,
        });
    }

    /// The page served earlier for `token` to the same call (`request_id`), if recent.
    fn replay(&self, token: &str, request_id: &str) -> Option<Bytes> {
        let now = Instant::now();
        lock(&self.served)
            .iter()
            .find(|s| {
                s.token == token
                    && s.request_id == request_id
                    && now.duration_since(s.at) <= REPLAY_FOR
            })
            .map(|s| s.body.clone())
    }
}

/// `GET /v1/customers?size=N[&seekOperation=next]`.
pub(crate) async fn list_customers(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let scripted = lock(&shared.directory.faults).pop_front();
    let retry_after_secs = shared.settings.retry_after_secs;
    let answer = list_page(shared, query, headers);
    match scripted {
        Some(action) => super::faults::apply_fault(action, retry_after_secs, answer).await,
        None => answer.await,
    }
}

/// The list answer itself, once any scripted fault has had its say.
async fn list_page(shared: Arc<Shared>, query: Option<String>, headers: HeaderMap) -> Response {
    let directory = &shared.directory;
    let pairs = query.as_deref().map(form_decode).unwrap_or_default();
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let refuse = |description| pc_error(StatusCode::BAD_REQUEST, INVALID_CONTINUATION, description);
    let size = match param("size") {
        None => directory.cap,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if n > 0 => n.min(directory.cap),
            _ => {
                return refuse(format!(
                    "The size '{text}' is invalid: expected a positive integer."
                ))
            }
        },
    };
    // Only a call with an id can be recognised when it is sent again.
    let request_id = super::answered::request_id(&headers);
    let token = match param("seekOperation") {
        None => None,
        Some(op) if op.eq_ignore_ascii_case("next") => {
            let token = headers
                .get(CONTINUATION_HEADER)
                .and_then(|v| v.to_str().ok());
            Some(token.unwrap_or_default())
        }
        Some(op) => {
            return refuse(format!(
                "The seek operation '{op}' is not supported; expected Next."
            ))
        }
    };
    let call = token.zip(request_id.as_deref());
    if let Some(body) = call.and_then(|(token, id)| directory.replay(token, id)) {
        return json_answer(body);
    }
    let offset = match token.map(|token| directory.redeem(token)) {
        None => 0,
        Some(Some(offset)) => offset,
        Some(None) => {
            return refuse("The continuation token is invalid or has already been used.".into())
        }
    };
    let end = offset.saturating_add(size).min(directory.list.len());
    let page = directory.list.get(offset..end).unwrap_or_default();
    let items: Vec<serde_json::Value> = page.iter().map(customer_json).collect();
    // Links are relative to `/v1`, as the service writes them.
    let mut links = json!({
        "self": {"uri": format!("/customers?size={size}"), "method": "GET", "headers": []},
    });
    if end < directory.list.len() {
        let token = directory.issue(end);
        links["next"] = json!({
            "uri": format!("/customers?size={size}&seekOperation=next"),
            "method": "GET",
            "headers": [{"key": CONTINUATION_HEADER, "value": token}],
        });
    }
    let body = json!({
        "totalCount": items.len(),
        "items": items,
        "links": links,
        "attributes": {"objectType": "Collection"},
    });
    let body = Bytes::from(body.to_string());
    if let Some((token, id)) = call {
        directory.remember(token, id, body.clone());
    }
    json_answer(body)
}

fn json_answer(body: Bytes) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn customer_json(profile: &CustomerProfile) -> serde_json::Value {
    let id = profile.customer_id.to_lower_string();
    json!({
        "id": id,
        "companyProfile": {
            "tenantId": id,
            "domain": profile.domain,
            "companyName": profile.company_name,
            "attributes": {"objectType": "CustomerCompanyProfile"},
        },
        "relationshipToPartner": "reseller",
        "links": {"self": {"uri": format!("/customers/{id}"), "method": "GET", "headers": []}},
        "attributes": {"objectType": "Customer"},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_lists_related_preloaded_customers_then_profiles_once() {
        let id =
            |n: u32| CustomerId::parse(&format!("aaaaaaaa-0000-4000-8000-{n:012}")).expect("id");
        let holds = |n: u32| PreloadEntry {
            customer_id: id(n),
            state: PreloadState::Holds(crate::domain::model::QualificationRecord {
                qualification: "Education".into(),
                ..Default::default()
            }),
        };
        let preload = [
            holds(1),
            holds(1),
            PreloadEntry {
                customer_id: id(2),
                state: PreloadState::NotFound,
            },
            holds(3),
        ];
        let named = CustomerProfile {
            customer_id: id(3),
            company_name: "Three".into(),
            domain: "three.example".into(),
        };
        let directory = Directory::new(
            &preload,
            vec![named.clone(), CustomerProfile::generated(id(4))],
            0,
            Vec::new(),
        );
        let ids: Vec<CustomerId> = directory.list.iter().map(|p| p.customer_id).collect();
        assert_eq!(ids, [id(1), id(3), id(4)]);
        assert_eq!(directory.list[1], named);
        assert_eq!(directory.cap, DEFAULT_PAGE_CAP);
        let token = directory.issue(2);
        assert_eq!(directory.redeem(&token), Some(2));
        assert_eq!(directory.redeem(&token), None, "single use");
        directory.remember(&token, "call-1", Bytes::from_static(b"page"));
        assert_eq!(
            directory.replay(&token, "call-1").as_deref(),
            Some(&b"page"[..]),
            "a resend of the same call gets the same page"
        );
        assert_eq!(
            directory.replay(&token, "call-2"),
            None,
            "another call does not"
        );
    }
}
