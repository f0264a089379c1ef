//! The partner's customer list on the wire: `GET /v1/customers?size=N`, its pages, and how
//! `links.next` leads to the next one (`seekOperation=next` plus an `MS-ContinuationToken`).

use reqwest::header::{HeaderName, HeaderValue};

use crate::domain::model::CustomerId;
use crate::partner_center::api::{sanitize_owned, Request};

/// Customers asked for per page; the service may answer with fewer.
pub const PAGE_SIZE: u32 = 500;

/// The most of one list page that is read. A page of [`PAGE_SIZE`] customers at ~2 KiB each is
/// about 1 MiB, the cap that guards the other (few-KiB) answers; a list page gets room to spare.
pub const MAX_PAGE_BYTES: usize = 8 * 1024 * 1024;

/// The header that carries a page's continuation token.
pub const CONTINUATION_TOKEN: HeaderName = HeaderName::from_static("ms-continuationtoken");

/// The path every page of the list is read from.
const LIST_PATH: &str = "/v1/customers";

/// Why a list page or its next link cannot be used. Each message names what is wrong with
/// the answer; the service's text is never echoed beyond the link it gave.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    #[error("the customer list page is not JSON")]
    NotJson(#[source] serde_json::Error),
    #[error("the customer list page has no items array")]
    NoItems,
    /// A listed customer has neither `id` nor `companyProfile.tenantId`.
    #[error("a customer on the list has no id")]
    NoId,
    #[error("links.next has no uri")]
    NoNextUri,
    /// `links.next.uri` is an absolute URL that does not parse.
    #[error("links.next.uri {uri:?}")]
    BadNextUri {
        /// The link as given.
        uri: String,
        /// Why it does not parse.
        #[source]
        source: <reqwest::Url as std::str::FromStr>::Err,
    },
    #[error("links.next.uri {uri:?} does not lead to the customer list")]
    ForeignNextUri {
        /// The link as given.
        uri: String,
    },
    #[error("links.next has no MS-ContinuationToken header, so the next page cannot be asked for")]
    NoToken,
    #[error("the continuation token holds characters an HTTP header cannot carry")]
    BadToken,
}

/// One customer as a list page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedCustomer {
    /// `id` (or `companyProfile.tenantId`), as given.
    pub id: String,
    /// The id as a GUID, when it is one.
    pub parsed: Option<CustomerId>,
    /// `companyProfile.companyName`, made safe for one cell.
    pub company_name: String,
    /// `companyProfile.domain`, made safe for one cell.
    pub domain: String,
}

/// How to ask for the page after this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextPage {
    /// Path and query under the base URL, `/v1` included exactly once.
    pub path_and_query: String,
    /// The `MS-ContinuationToken` value, verbatim.
    pub token: Option<String>,
}

impl NextPage {
    /// The request for this page, and its continuation header. A next link without a token is
    /// refused: followed without one, a service answering the same page again would be read
    /// for ever.
    pub fn request(&self) -> Result<(Request, Vec<(HeaderName, HeaderValue)>), ListError> {
        let token = self.token.as_deref().ok_or(ListError::NoToken)?;
        let value = HeaderValue::from_str(token).map_err(|_| ListError::BadToken)?;
        Ok((
            Request::get(self.path_and_query.clone()),
            vec![(CONTINUATION_TOKEN, value)],
        ))
    }
}

/// One page of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The customers on it, in the service's order.
    pub customers: Vec<ListedCustomer>,
    /// The next page, or `None` on the last one.
    pub next: Option<NextPage>,
    /// `totalCount` (a count that is not a whole number >= 0 is left out).
    pub total: Option<u64>,
}

/// `GET /v1/customers?size=N`: the first page.
pub fn first_page_request(size: u32) -> Request {
    Request::get(format!("{LIST_PATH}?size={size}"))
}

/// Turns `links.next.uri` into a path under the base URL. The service writes it relative to
/// `/v1` (`/customers?size=5&seekOperation=next`), but examples with `/v1` already in it exist
/// too; prefixing blindly sends `/v1/v1/customers`, a bug other clients have shipped.
pub fn resolve_next_uri(uri: &str) -> Result<String, ListError> {
    let uri = uri.trim();
    let relative = if uri.starts_with("http://") || uri.starts_with("https://") {
        let url = reqwest::Url::parse(uri).map_err(|source| ListError::BadNextUri {
            uri: uri.to_string(),
            source,
        })?;
        url[url::Position::BeforePath..url::Position::AfterQuery].to_string()
    } else {
        uri.to_string()
    };
    let path_and_query = if relative.starts_with("/v1/") || relative.starts_with("/v1?") {
        relative
    } else if relative.starts_with('/') {
        format!("/v1{relative}")
    } else {
        format!("/v1/{relative}")
    };
    let path = path_and_query.split('?').next().unwrap_or_default();
    // Our token only ever goes back to the list it came from.
    if !path.trim_end_matches('/').eq_ignore_ascii_case(LIST_PATH) {
        return Err(ListError::ForeignNextUri {
            uri: uri.to_string(),
        });
    }
    Ok(path_and_query)
}

/// The member `key` of a JSON object, matched case-insensitively (the service's own JSON is
/// camelCase, but its serialisers have been seen to vary).
fn member<'a>(value: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    let map = value.as_object()?;
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn text(value: Option<&serde_json::Value>) -> Option<String> {
    let text = value?.as_str()?.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// Parses one page: `{"totalCount", "items": [...], "links": {"next": {"uri", "headers"}}}`.
/// `totalCount` only bounds the pages read (it counts the page in some answers, the whole list
/// in others).
pub fn parse_page(body: &[u8]) -> Result<Page, ListError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(ListError::NotJson)?;
    let items = match member(&value, "items") {
        Some(serde_json::Value::Array(items)) => items.as_slice(),
        Some(serde_json::Value::Null) | None if value.is_object() => &[],
        _ => return Err(ListError::NoItems),
    };
    let mut customers = Vec::with_capacity(items.len());
    for item in items {
        let profile = |key| text(member(item, "companyProfile").and_then(|p| member(p, key)));
        let id = text(member(item, "id"))
            .or_else(|| profile("tenantId"))
            .ok_or(ListError::NoId)?;
        customers.push(ListedCustomer {
            parsed: CustomerId::parse(&id),
            id: sanitize_owned(id),
            company_name: sanitize_owned(profile("companyName").unwrap_or_default()),
            domain: sanitize_owned(profile("domain").unwrap_or_default()),
        });
    }
    let next = match member(&value, "links").and_then(|l| member(l, "next")) {
        None | Some(serde_json::Value::Null) => None,
        Some(next) => {
            let uri = text(member(next, "uri")).ok_or(ListError::NoNextUri)?;
            let token = member(next, "headers")
                .and_then(serde_json::Value::as_array)
                .and_then(|headers| {
                    headers.iter().find(|h| {
                        text(member(h, "key"))
                            .is_some_and(|k| k.eq_ignore_ascii_case(CONTINUATION_TOKEN.as_str()))
                    })
                })
                // Verbatim: the token is opaque, and its trailing `=` matters.
                .and_then(|h| member(h, "value"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_string);
            Some(NextPage {
                path_and_query: resolve_next_uri(&uri)?,
                token,
            })
        }
    };
    // `as_u64` is the checked conversion: a negative or fractional count is no count.
    let total = member(&value, "totalCount").and_then(serde_json::Value::as_u64);
    Ok(Page {
        customers,
        next,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_get_v1_exactly_once() {
        for uri in [
            "/customers?size=500&seekOperation=next",
            "customers?size=500&seekOperation=next",
            "/v1/customers?size=500&seekOperation=next",
            "https://api.partnercenter.microsoft.com/v1/customers?size=500&seekOperation=next",
        ] {
            assert_eq!(
                resolve_next_uri(uri).ok().as_deref(),
                Some("/v1/customers?size=500&seekOperation=next"),
                "{uri}"
            );
        }
        assert!(matches!(
            resolve_next_uri("/invoices?size=5"),
            Err(ListError::ForeignNextUri { .. })
        ));
        assert!(resolve_next_uri("/customers/x/qualifications").is_err());
        let bad = resolve_next_uri("https://[::1/customers").expect_err("not a URL");
        let text = crate::domain::error::chain(&bad);
        assert!(
            text.starts_with("links.next.uri \"https://[::1/customers\": "),
            "{text}"
        );
    }

    #[test]
    fn a_documented_page_is_read() {
        let page = parse_page(
            br#"{"totalCount": 2, "items": [
                {"id": "B44BB1FB-C595-45B0-9E09-D657365580BF", "companyProfile": {"tenantId": "b44bb1fb-c595-45b0-9e09-d657365580bf", "domain": "contoso.onmicrosoft.com", "companyName": "=Contoso\u0007 Ltd", "attributes": {"objectType": "CustomerCompanyProfile"}}, "relationshipToPartner": "reseller", "attributes": {"objectType": "Customer"}},
                {"companyProfile": {"tenantId": "45c44870-ef77-4fdd-b6fe-3dacb075cff2"}}
            ],
            "links": {"self": {"uri": "/customers?size=2", "method": "GET", "headers": []},
                      "next": {"uri": "/customers?size=2&seekOperation=next", "method": "GET",
                               "headers": [{"key": "MS-ContinuationToken", "value": "a,b/c="}]}},
            "attributes": {"objectType": "Collection"}}"#,
        )
        .expect("page");
        assert_eq!(page.customers.len(), 2);
        let first = &page.customers[0];
        assert_eq!(
            first.parsed.map(|id| id.to_lower_string()).as_deref(),
            Some("b44bb1fb-c595-45b0-9e09-d657365580bf")
        );
        assert_eq!(first.company_name, "=Contoso Ltd");
        assert_eq!(first.domain, "contoso.onmicrosoft.com");
        assert_eq!(page.customers[1].id, "45c44870-ef77-4fdd-b6fe-3dacb075cff2");
        assert_eq!(page.customers[1].company_name, "");
        let next = page.next.expect("next");
        assert_eq!(
            next.path_and_query,
            "/v1/customers?size=2&seekOperation=next"
        );
        assert_eq!(next.token.as_deref(), Some("a,b/c="));
        let (request, headers) = next.request().expect("request");
        assert_eq!(request.path_and_query, next.path_and_query);
        assert_eq!(headers[0].0, CONTINUATION_TOKEN);
    }

    #[test]
    fn the_last_page_has_no_next_and_bad_pages_are_refused() {
        let page = parse_page(
            br#"{"totalCount":0,"items":[],"links":{"self":{"uri":"/customers?size=5"}}}"#,
        )
        .expect("page");
        assert!(page.customers.is_empty() && page.next.is_none());
        let tokenless = parse_page(
            br#"{"items":[],"links":{"next":{"uri":"/customers?size=5&seekOperation=next","headers":[]}}}"#,
        )
        .expect("page");
        let next = tokenless.next.expect("a next link");
        assert_eq!(next.token, None);
        let refused = next.request().expect_err("no token, no request");
        assert!(
            refused.to_string().contains("MS-ContinuationToken"),
            "{refused}"
        );
        assert!(matches!(parse_page(b"[]"), Err(ListError::NoItems)));
        let not_json = parse_page(b"not json").expect_err("not JSON");
        assert!(matches!(not_json, ListError::NotJson(_)));
        let text = crate::domain::error::chain(&not_json);
        assert!(
            text.starts_with("the customer list page is not JSON: expected "),
            "{text}"
        );
        assert!(matches!(
            parse_page(br#"{"items":[{"companyProfile":{}}]}"#),
            Err(ListError::NoId)
        ));
    }
}
