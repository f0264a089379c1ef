//! `export`: the customer list followed page by page, each customer's qualifications read
//! through the rate-limited pool, one CSV row per qualification held.

use crate::common::*;
use pc_qualify::domain::model::{CustomerId, QualificationRecord};
use pc_qualify::simulator::{
    CustomerProfile, FaultAction, PreloadEntry, PreloadState, RecordedRequest, ScriptedFault,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const EXPORT_HEADER: &str =
    "customer_id,company_name,domain,qualification,vetting_status,vetting_reason,vetting_create_date";

fn id(n: u32) -> CustomerId {
    CustomerId::parse(&cid(n)).expect("id")
}

fn profile(n: u32) -> CustomerProfile {
    CustomerProfile {
        customer_id: id(n),
        company_name: format!("School {n}"),
        domain: format!("school{n}.example.edu"),
    }
}

fn holds(n: u32, qualification: &str, status: &str, reason: Option<&str>) -> PreloadEntry {
    PreloadEntry {
        customer_id: id(n),
        state: PreloadState::Holds(QualificationRecord {
            qualification: qualification.into(),
            vetting_status: Some(status.into()),
            vetting_reason: reason.map(str::to_string),
            vetting_create_date: Some("2025-01-02T03:04:05Z".into()),
        }),
    }
}

/// `n` customers holding nothing, listed `cap` per page.
fn listed(n: u32, cap: usize) -> SimConfig {
    SimConfig {
        customers: (1..=n).map(profile).collect(),
        customer_page_cap: cap,
        ..SimConfig::default()
    }
}

/// Parses export CSV text, checking the exact header; one map per row.
fn parse_export(text: &str) -> Vec<HashMap<String, String>> {
    csv_rows(text, EXPORT_HEADER)
}

fn read_export(dir: &TempDir) -> Vec<HashMap<String, String>> {
    parse_export(&std::fs::read_to_string(dir.join("out.csv")).expect("export written"))
}

/// Rows of one customer, in file order.
fn rows_of(rows: &[HashMap<String, String>], n: u32) -> Vec<&HashMap<String, String>> {
    rows.iter().filter(|r| r["customer_id"] == cid(n)).collect()
}

fn list_requests(sim: &SimHandle) -> Vec<RecordedRequest> {
    sim.api_requests()
        .into_iter()
        .filter(|r| r.path == "/v1/customers")
        .collect()
}

async fn export(dir: &TempDir, env: &[(String, String)], extra: &[&str]) -> Finished {
    let output = dir.s("out.csv");
    let mut args = vec!["export", "-o", &output];
    args.extend_from_slice(extra);
    pcq(&args).envs(env).run().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_three_customers_at_five_per_page_take_five_pages() {
    let sim = start_sim(listed(23, 5)).await;
    let dir = work_dir("export-pages");
    let output = export(&dir, &sim_env(&sim), &["--rate", "0"]).await;
    let stderr = text(&output.stderr);
    output.assert_code(0);
    assert!(stderr.contains("exported 23 customers"), "{stderr}");

    let rows = read_export(&dir);
    assert_eq!(rows.len(), 23, "one row per customer holding nothing");
    for n in 1..=23 {
        let mine = rows_of(&rows, n);
        assert_eq!(mine.len(), 1, "customer {n} exactly once");
        assert_eq!(mine[0]["company_name"], format!("School {n}"));
        assert_eq!(mine[0]["domain"], format!("school{n}.example.edu"));
        assert_eq!(mine[0]["qualification"], "");
    }

    let api = sim.api_requests();
    assert!(
        api.iter().all(|r| !r.path.starts_with("/v1/v1")),
        "the relative next link is not prefixed twice"
    );
    let pages = list_requests(&sim);
    assert_eq!(pages.len(), 5, "23 customers, 5 per page");
    assert!(pages.iter().all(|p| p.method == "GET" && p.status == 200));
    assert_eq!(pages[0].query.as_deref(), Some("size=500"));
    assert_eq!(header(&pages[0], "ms-continuationtoken"), None);
    for (i, page) in pages.iter().enumerate().skip(1) {
        assert_eq!(
            page.query.as_deref(),
            Some("size=5&seekOperation=next"),
            "page {}",
            i + 1
        );
        let token = header(page, "ms-continuationtoken").expect("a later page carries its token");
        // The simulator's tokens end with the offset they continue at: each page carried the
        // token the page before it handed out (and a spent or unknown token would be a 400).
        assert!(
            token.ends_with(&format!("/{}=", 5 * i)),
            "page {}: {token}",
            i + 1
        );
    }
    let reads = api
        .iter()
        .filter(|r| r.path.ends_with("/qualifications"))
        .count();
    assert_eq!(reads, 23, "one qualifications read per customer");
}

fn mixed_sim() -> SimConfig {
    let mut customers: Vec<CustomerProfile> = (1..=6).map(profile).collect();
    customers[2].company_name = "=HYPERLINK(\"http://x\")\u{7}".into();
    SimConfig {
        preload: vec![
            holds(1, "Education", "Approved", None),
            holds(2, "Education", "Denied", Some("Not an Academic Domain")),
            holds(4, "Education", "InReview", None),
            holds(4, "StateOwnedEntity", "Approved", None),
            holds(5, "GovernmentCommunityCloud", "Approved", None),
        ],
        customers,
        // Customer 6's first read is refused for good (403 is not retried).
        script: vec![ScriptedFault {
            customer_id: id(6),
            action: FaultAction::Status {
                status: 403,
                retry_after: None,
            },
        }],
        ..SimConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_denied_none_and_unreadable_customers_each_get_their_rows() {
    let sim = start_sim(mixed_sim()).await;
    let dir = work_dir("export-mixed");
    let env = sim_env(&sim);
    let output = export(&dir, &env, &["--rate", "0"]).await;
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "an unread customer fails the export: {stderr}"
    );
    assert!(stderr.contains("could not be read"), "{stderr}");

    let rows = read_export(&dir);
    assert_eq!(rows.len(), 7, "{rows:?}");
    let view = |n: u32| -> Vec<(String, String, String)> {
        rows_of(&rows, n)
            .iter()
            .map(|r| {
                (
                    r["qualification"].clone(),
                    r["vetting_status"].clone(),
                    r["vetting_reason"].clone(),
                )
            })
            .collect()
    };
    let row = |q: &str, s: &str, r: &str| (q.to_string(), s.to_string(), r.to_string());
    assert_eq!(view(1), [row("Education", "Approved", "")]);
    assert_eq!(
        view(2),
        [row("Education", "Denied", "Not an Academic Domain")]
    );
    assert_eq!(view(3), [row("", "", "")], "holds nothing: one bare row");
    let mut four = view(4);
    four.sort();
    assert_eq!(
        four,
        [
            row("Education", "InReview", ""),
            row("StateOwnedEntity", "Approved", "")
        ]
    );
    assert_eq!(view(5), [row("GovernmentCommunityCloud", "Approved", "")]);
    assert_eq!(view(6), [row("", "", "")], "unreadable: empty vetting");
    assert_eq!(
        rows_of(&rows, 1)[0]["vetting_create_date"],
        "2025-01-02T03:04:05Z"
    );
    assert_eq!(rows_of(&rows, 6)[0]["company_name"], "School 6");
    // CSV hygiene: a formula is defused and the control character is gone.
    assert_eq!(
        rows_of(&rows, 3)[0]["company_name"],
        "'=HYPERLINK(\"http://x\")"
    );
    assert!(
        sim.api_requests().iter().all(|r| r.method == "GET"),
        "export never posts"
    );
    let unread = dir.join("out.csv.unread");
    assert_eq!(
        std::fs::read_to_string(&unread).expect("unread list kept"),
        format!("{}\n", cid(6))
    );

    // --resume reads the unread customer again (and the last customer written), nothing else.
    let before = sim.api_requests().len();
    let output = export(&dir, &env, &["--rate", "0", "--resume"]).await;
    output.assert_code(0);
    let read_again: Vec<String> = sim.api_requests()[before..]
        .iter()
        .filter(|r| r.path.ends_with("/qualifications"))
        .map(|r| r.path.clone())
        .collect();
    let six = format!("/v1/customers/{}/qualifications", cid(6));
    assert!(
        read_again.len() <= 2 && read_again.contains(&six),
        "{read_again:?}"
    );
    let resumed = read_export(&dir);
    assert_eq!(resumed.len(), 7, "{resumed:?}");
    let six_rows = rows_of(&resumed, 6);
    assert_eq!(six_rows.len(), 1);
    assert_eq!(
        (
            six_rows[0]["qualification"].as_str(),
            six_rows[0]["vetting_status"].as_str()
        ),
        ("", ""),
        "read now: holds nothing"
    );
    assert_eq!(rows_of(&resumed, 4).len(), 2, "kept whole");
    assert!(!unread.exists(), "nothing left to read again");

    // --qualification Education: its rows, plus a bare row for every customer lacking it.
    let output = export(
        &dir,
        &env,
        &["--rate", "0", "--force", "--qualification", "education"],
    )
    .await;
    output.assert_code(0);
    let rows = read_export(&dir);
    assert_eq!(rows.len(), 6, "one row per customer: {rows:?}");
    let q = |n: u32| -> (String, String) {
        let mine = rows_of(&rows, n);
        assert_eq!(mine.len(), 1, "customer {n}");
        (
            mine[0]["qualification"].clone(),
            mine[0]["vetting_status"].clone(),
        )
    };
    assert_eq!(q(1), ("Education".into(), "Approved".into()));
    assert_eq!(q(2), ("Education".into(), "Denied".into()));
    assert_eq!(q(3), (String::new(), String::new()));
    assert_eq!(q(4), ("Education".into(), "InReview".into()));
    assert_eq!(q(5), (String::new(), String::new()));
    assert_eq!(q(6), (String::new(), String::new()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_page_is_retried_with_its_token_and_an_unreadable_list_stops_early() {
    // The third list request (page 3) answers 503 once.
    let pass = FaultAction::Delay(Duration::ZERO);
    let sim = start_sim(SimConfig {
        list_script: vec![
            pass.clone(),
            pass,
            FaultAction::Status {
                status: 503,
                retry_after: None,
            },
        ],
        ..listed(12, 5)
    })
    .await;
    let dir = work_dir("export-retry");
    let output = export(&dir, &sim_env(&sim), &["--rate", "0"]).await;
    output.assert_code(0);
    assert_eq!(read_export(&dir).len(), 12);
    let pages = list_requests(&sim);
    let statuses: Vec<u16> = pages.iter().map(|p| p.status).collect();
    assert_eq!(statuses, [200, 200, 503, 200]);
    assert_eq!(
        header(&pages[2], "ms-continuationtoken"),
        header(&pages[3], "ms-continuationtoken"),
        "the retry carries the same token"
    );
    assert_ne!(
        header(&pages[2], "ms-requestid"),
        header(&pages[3], "ms-requestid"),
        "a new MS-RequestId after the 503's answer (Microsoft's headers page)"
    );

    // A list that cannot be read at all stops before the output is created (exit 2).
    let sim = start_sim(SimConfig {
        list_script: vec![FaultAction::Status {
            status: 403,
            retry_after: None,
        }],
        ..listed(3, 5)
    })
    .await;
    let dir = work_dir("export-refused");
    let output = export(&dir, &sim_env(&sim), &["--rate", "0"]).await;
    let stderr = text(&output.stderr);
    output.assert_code(2);
    assert!(
        stderr.contains("customer list could not be read"),
        "{stderr}"
    );
    assert!(!dir.join("out.csv").exists(), "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_and_reads_share_the_rate_cap() {
    // 3 pages + 12 reads = 15 requests at 10/s with a burst of 1.
    let sim = start_sim(listed(12, 5)).await;
    let dir = work_dir("export-rate");
    let output = export(
        &dir,
        &sim_env(&sim),
        &["--rate", "10", "--burst", "1", "--concurrency", "4"],
    )
    .await;
    output.assert_code(0);
    let api = sim.api_requests();
    assert_eq!(api.len(), 15);
    assert_eq!(list_requests(&sim).len(), 3);
    // Arrival times as the simulator saw them (not the test's clock), with room for jitter:
    // no 1-second window holds more than rate + burst + 1, and the whole takes ~1.4 s.
    let mut at: Vec<u64> = api.iter().map(|r| r.at_ms).collect();
    at.sort_unstable();
    for (i, start) in at.iter().enumerate() {
        let in_window = at[i..].iter().take_while(|t| **t < start + 1000).count();
        assert!(
            in_window <= 12,
            "{in_window} requests within 1 s of {start} ms: {at:?}"
        );
    }
    let span = at[at.len() - 1] - at[0];
    assert!(
        span >= 1100,
        "15 requests at 10/s span at least ~1.4 s: {span} ms ({at:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dash_writes_the_export_to_standard_output() {
    let sim = start_sim(SimConfig {
        preload: vec![holds(2, "Education", "Approved", None)],
        ..listed(3, 5)
    })
    .await;
    let output = pcq(&["export", "-o", "-", "--rate", "0"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(0);
    let stdout = text(&output.stdout);
    let rows = parse_export(&stdout);
    assert_eq!(rows.len(), 3, "{stdout}");
    assert_eq!(rows_of(&rows, 2)[0]["qualification"], "Education");
    assert!(
        !stdout.contains("pc-qualify:"),
        "the summary stays on stderr"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_export_stops_cleanly_and_a_forced_rerun_completes_it() {
    let sim = start_sim(listed(23, 5)).await;
    let dir = work_dir("export-interrupt");
    let env = sim_env(&sim);
    let out = dir.s("out.csv");
    // 28 requests at 4/s: about 7 s, interrupted once a few customers are on file.
    let mut child = pcq(&["export", "-o", &out, "--rate", "4", "--burst", "1"])
        .envs(&env)
        .spawn();
    child
        .wait_until("3 customers in the export", || {
            std::fs::read_to_string(dir.join("out.csv")).is_ok_and(|t| t.lines().count() > 3)
        })
        .await;
    child.wait_for_signal_handlers().await;
    child.signal("INT");
    let output = child.finish().await;
    let stderr = text(&output.stderr);
    output.assert_code(130);
    assert!(stderr.contains("--resume"), "says how to finish: {stderr}");
    let partial = read_export(&dir);
    assert!(
        !partial.is_empty() && partial.len() < 23,
        "stopped part-way ({} rows written)",
        partial.len()
    );
    let reads = |sim: &SimHandle| {
        sim.api_requests()
            .iter()
            .filter(|r| r.path.ends_with("/qualifications"))
            .count()
    };
    let reads_before = reads(&sim);

    // --resume reads only the customers missing from the file (and the last one written).
    let output = export(&dir, &env, &["--rate", "0", "--resume"]).await;
    let stderr = text(&output.stderr);
    output.assert_code(0);
    assert!(stderr.contains("carried over"), "{stderr}");
    let rows = read_export(&dir);
    assert_eq!(rows.len(), 23);
    for n in 1..=23 {
        assert_eq!(rows_of(&rows, n).len(), 1, "customer {n} exactly once");
    }
    let resumed_reads = reads(&sim) - reads_before;
    assert!(
        resumed_reads <= 23 - partial.len() + 1,
        "{resumed_reads} reads to finish {} missing customers",
        23 - partial.len()
    );

    // Starting over with --force gives the same complete file.
    let output = export(&dir, &env, &["--rate", "0", "--force"]).await;
    output.assert_code(0);
    let rows = read_export(&dir);
    assert_eq!(rows.len(), 23);
    for n in 1..=23 {
        assert_eq!(rows_of(&rows, n).len(), 1, "customer {n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_exports_its_built_in_customers() {
    let dir = work_dir("export-sandbox");
    let output = export(&dir, &[], &["--sandbox", "--rate", "0"]).await;
    output.assert_code(0);
    let rows = read_export(&dir);
    let view: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["customer_id"].clone(),
                r["company_name"].clone(),
                r["vetting_status"].clone(),
            )
        })
        .collect();
    let sandbox = |n: u32, name: &str, status: &str| {
        (
            format!("11111111-1111-4111-8111-{n:012}"),
            name.to_string(),
            status.to_string(),
        )
    };
    let mut view = view;
    view.sort();
    assert_eq!(
        view,
        [
            sandbox(1, "Northwind Primary School", "Approved"),
            sandbox(2, "Fabrikam Community College", "Approved"),
            sandbox(3, "Contoso University", "Approved"),
            sandbox(4, "Tailspin High School", "InReview"),
            sandbox(5, "Adventure Works Learning", "Denied"),
            sandbox(6, "Wide World Utilities", "Approved"),
        ],
        "the missing (7) and unrelated (8) customers are not on the list"
    );
}

/// Every customer `1..=n` is in the export exactly once.
fn assert_each_customer_once(rows: &[HashMap<String, String>], n: u32) {
    assert_eq!(rows.len(), usize::try_from(n).expect("n"), "{rows:?}");
    for i in 1..=n {
        assert_eq!(rows_of(rows, i).len(), 1, "customer {i} exactly once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_answer_cut_off_or_too_slow_is_resent_and_the_same_page_comes_back() {
    // The third list request (page 3) lands, is spent, and its answer is lost on the way: cut
    // off mid-body, or its body slower than --timeout. The resend carries the same token and
    // MS-RequestId; the service answers it with the page it served (MS-RequestId idempotency).
    let pass = FaultAction::Delay(Duration::ZERO);
    for (name, lost, extra) in [
        ("cut", FaultAction::Cut, vec![]),
        (
            "slowbody",
            FaultAction::SlowBody(Duration::from_secs(3)),
            vec!["--timeout", "1"],
        ),
    ] {
        let sim = start_sim(SimConfig {
            list_script: vec![pass.clone(), pass.clone(), lost],
            ..listed(12, 5)
        })
        .await;
        let dir = work_dir(&format!("export-lost-{name}"));
        let mut args = vec!["--rate", "0"];
        args.extend(extra);
        let output = export(&dir, &sim_env(&sim), &args).await;
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{name}: {stderr}");
        assert_each_customer_once(&read_export(&dir), 12);
        let pages = list_requests(&sim);
        let statuses: Vec<u16> = pages.iter().map(|p| p.status).collect();
        assert_eq!(statuses, [200, 200, 200, 200], "{name}");
        assert_eq!(
            header(&pages[2], "ms-continuationtoken"),
            header(&pages[3], "ms-continuationtoken"),
            "{name}: the resend carries the same token"
        );
        assert_eq!(
            header(&pages[2], "ms-requestid"),
            header(&pages[3], "ms-requestid"),
            "{name}: one logical call"
        );
    }
}

/// One list request as a stand-in service saw it: the continuation token and the status answered.
type Seen = Arc<Mutex<Vec<(Option<String>, u16)>>>;

/// A page of customers `ids`; `next`: `None` on the last page, `Some(None)` a next link without
/// a continuation token, `Some(Some(t))` one carrying token `t`.
fn page_json(ids: std::ops::RangeInclusive<u32>, next: Option<Option<&str>>) -> String {
    let items: Vec<serde_json::Value> = ids
        .map(|n| {
            serde_json::json!({
                "id": cid(n),
                "companyProfile": {"tenantId": cid(n), "companyName": format!("School {n}"), "domain": format!("school{n}.example.edu")},
            })
        })
        .collect();
    let mut links =
        serde_json::json!({"self": {"uri": "/customers?size=3", "method": "GET", "headers": []}});
    if let Some(token) = next {
        let headers = match token {
            Some(t) => serde_json::json!([{"key": "MS-ContinuationToken", "value": t}]),
            None => serde_json::json!([]),
        };
        links["next"] = serde_json::json!({"uri": "/customers?size=3&seekOperation=next", "method": "GET", "headers": headers});
    }
    serde_json::json!({"totalCount": items.len(), "items": items, "links": links}).to_string()
}

/// A stand-in for Partner Center's customer list whose answers `answer(token, seen_so_far)`
/// decides (`token` is `None` for a first-page request); every customer holds nothing. Tokens
/// come from the simulator `sim`, which the returned environment still names as authority.
async fn stand_in_list(
    sim: &SimHandle,
    answer: impl Fn(Option<&str>, &[(Option<String>, u16)]) -> (u16, String) + Send + Sync + 'static,
) -> (Vec<(String, String)>, Seen) {
    use axum::extract::RawQuery;
    use axum::http::{header::CONTENT_TYPE, HeaderMap, StatusCode};
    let seen: Seen = Arc::default();
    let answer = Arc::new(answer);
    let list = {
        let seen = seen.clone();
        move |headers: HeaderMap, RawQuery(query): RawQuery| {
            let (seen, answer) = (seen.clone(), answer.clone());
            async move {
                let next = query.unwrap_or_default().contains("seekOperation=next");
                let token = headers
                    .get("ms-continuationtoken")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                    .filter(|_| next);
                let mut seen = seen.lock().expect("lock");
                let (status, body) = answer(token.as_deref(), &seen);
                seen.push((token, status));
                (
                    StatusCode::from_u16(status).expect("status"),
                    [(CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        }
    };
    let app = axum::Router::new()
        .route("/v1/customers", axum::routing::get(list))
        .route(
            "/v1/customers/{id}/qualifications",
            axum::routing::get(|| async { ([(CONTENT_TYPE, "application/json")], "[]") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut env = sim_env(sim);
    for (key, value) in &mut env {
        if key == "PC_BASE_URL" {
            value.clone_from(&url);
        }
    }
    (env, seen)
}

const SPENT_TOKEN: &str = r#"{"code": 2000, "description": "The continuation token is invalid or has already been used.", "data": [], "source": "PartnerFD"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_the_service_spent_on_a_lost_answer_restarts_the_list_without_duplicates() {
    // A service that does not replay: page 2's first request spends its token and fails (503);
    // the resend with that token is refused with code 2000. The export reads the list again from
    // page 1 and skips the customers it already has.
    let sim = start_sim(SimConfig::default()).await;
    let (env, seen) = stand_in_list(&sim, |token, earlier| {
        let spent = earlier.iter().any(|(t, _)| t.as_deref() == token);
        match token {
            None => {
                let firsts = earlier.iter().filter(|(t, _)| t.is_none()).count();
                let token = format!("t{}", firsts + 1);
                (200, page_json(1..=3, Some(Some(&token))))
            }
            Some(_) if spent => (400, SPENT_TOKEN.to_string()),
            Some("t1") => (503, String::new()),
            Some(_) => (200, page_json(4..=5, None)),
        }
    })
    .await;
    let dir = work_dir("export-token-spent");
    let output = export(&dir, &env, &["--rate", "0", "--max-backoff", "0.1"]).await;
    output.assert_code(0);
    assert_each_customer_once(&read_export(&dir), 5);
    let seen = seen.lock().expect("lock").clone();
    let view: Vec<(Option<&str>, u16)> = seen.iter().map(|(t, s)| (t.as_deref(), *s)).collect();
    assert_eq!(
        view,
        [
            (None, 200),
            (Some("t1"), 503),
            (Some("t1"), 400),
            (None, 200),
            (Some("t2"), 200)
        ]
    );
    // A token refused on its first attempt is no lost answer: the list error stands.
    let (env, _) = stand_in_list(&sim, |token, _| match token {
        None => (200, page_json(1..=3, Some(Some("t1")))),
        Some(_) => (400, SPENT_TOKEN.to_string()),
    })
    .await;
    let dir = work_dir("export-token-refused");
    let output = export(&dir, &env, &["--rate", "0"]).await;
    let stderr = text(&output.stderr);
    output.assert_code(1);
    assert!(stderr.contains("code 2000"), "{stderr}");
    assert_each_customer_once(&read_export(&dir), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_going_round_in_circles_ends_with_an_error_not_duplicates() {
    let sim = start_sim(SimConfig::default()).await;
    // After 20 list requests the stand-in gives up (404), so a client that loops still ends.
    let circling = |next: Option<&'static str>| {
        move |_: Option<&str>, earlier: &[(Option<String>, u16)]| {
            if earlier.len() >= 20 {
                (404, String::new())
            } else {
                (200, page_json(1..=3, Some(next)))
            }
        }
    };
    for (name, next, reason) in [
        ("no-token", None, "MS-ContinuationToken"),
        ("same-page", Some("again"), "already listed"),
    ] {
        let (env, seen) = stand_in_list(&sim, circling(next)).await;
        let dir = work_dir(&format!("export-circle-{name}"));
        let output = export(&dir, &env, &["--rate", "0"]).await;
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(reason), "{name}: {stderr}");
        assert_each_customer_once(&read_export(&dir), 3);
        let requests = seen.lock().expect("lock").len();
        let expected = if next.is_none() { 1 } else { 2 };
        assert_eq!(requests, expected, "{name}: list requests");
    }
}

/// Issue 22: a service whose every page adds one customer not seen before (so no page is all
/// repeats) was followed for ever. A token handed back twice, or more pages than the first
/// page's counts allow, ends the export (exit 1) with the rows of the pages read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_that_adds_one_customer_a_page_is_not_followed_for_ever() {
    let sim = start_sim(SimConfig::default()).await;
    // Page k holds customers k..=k+2: one new each time. `total`: the first page's totalCount
    // (9: the list's, three pages of three; None: the page's own count, as the simulator's).
    for (name, same_token, total, reason, pages) in [
        (
            "token-again",
            true,
            Some(9),
            "continuation token an earlier page gave",
            2,
        ),
        (
            "list-total",
            false,
            Some(9),
            "more than its counts allow (16)",
            16,
        ),
        ("page-count", false, None, "more than its counts allow", 34),
    ] {
        let (env, seen) = stand_in_list(&sim, move |_, earlier| {
            let k = u32::try_from(earlier.len()).expect("pages") + 1;
            if k > 200 {
                // A client that loops still ends.
                return (404, String::new());
            }
            let token = if same_token {
                "again".to_string()
            } else {
                format!("t{k}")
            };
            let mut page: serde_json::Value =
                serde_json::from_str(&page_json(k..=k + 2, Some(Some(&token)))).expect("json");
            if let Some(total) = total.filter(|_| k == 1) {
                page["totalCount"] = total.into();
            }
            (200, page.to_string())
        })
        .await;
        let dir = work_dir(&format!("export-loop-{name}"));
        let output = export(&dir, &env, &["--rate", "0"]).await;
        let stderr = output.stderr();
        assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(reason), "{name}: {stderr}");
        let requests = seen.lock().expect("lock").len();
        assert_eq!(requests, pages, "{name}: list requests");
        assert_each_customer_once(&read_export(&dir), u32::try_from(pages).expect("n") + 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_page_over_a_mebibyte_is_read() {
    // 100 customers with 16 KB names: a page of about 1.6 MiB, over the 1 MiB cap that guards
    // the (few-KiB) qualification answers.
    let customers: Vec<CustomerProfile> = (1..=100)
        .map(|n| CustomerProfile {
            company_name: format!("School {n} {}", "x".repeat(16_000)),
            ..profile(n)
        })
        .collect();
    let sim = start_sim(SimConfig {
        customers,
        customer_page_cap: 100,
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("export-big-page");
    let output = export(&dir, &sim_env(&sim), &["--rate", "0"]).await;
    output.assert_code(0);
    assert_each_customer_once(&read_export(&dir), 100);
    let pages = list_requests(&sim);
    assert_eq!(pages.len(), 1, "one page, read at the first attempt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_fed_to_run_does_not_post_tenant_domains_as_websites() {
    let sim = start_sim(SimConfig {
        preload: vec![holds(
            1,
            "Education",
            "Denied",
            Some("Not an Academic Domain"),
        )],
        ..listed(1, 5)
    })
    .await;
    let dir = work_dir("export-to-run");
    let output = export(&dir, &sim_env(&sim), &["--rate", "0"]).await;
    output.assert_code(0);
    let export_text = std::fs::read_to_string(dir.join("out.csv")).expect("export");
    assert!(export_text.contains("school1.example.edu"), "{export_text}");
    let output = pcq(&[
        "run",
        "--dry-run",
        "-i",
        &dir.s("out.csv"),
        "-o",
        &dir.s("results.csv"),
        "--education-segment",
        "K12",
    ])
    .run()
    .await;
    let stderr = text(&output.stderr);
    output.assert_code(0);
    assert!(stderr.contains("would be sent as"), "{stderr}");
    assert!(stderr.contains("\"educationSegment\""), "{stderr}");
    assert!(
        !stderr.contains("school1.example.edu") && !stderr.contains("website"),
        "the tenant's domain is not the school's website: {stderr}"
    );
    // A file of the operator's own keeps `Domain` as the website.
    dir.write(
        "own.csv",
        format!(
            "Customer ID,Qualification,Domain\n{},Education,school.example.edu\n",
            cid(1)
        ),
    );
    let output = pcq(&[
        "run",
        "--dry-run",
        "-i",
        &dir.s("own.csv"),
        "-o",
        &dir.s("own-results.csv"),
        "--education-segment",
        "K12",
    ])
    .run()
    .await;
    let stderr = text(&output.stderr);
    output.assert_code(0);
    assert!(
        stderr.contains("\"website\":\"school.example.edu\""),
        "{stderr}"
    );
}

/// Issue 22: a forced export over an earlier one writes beside it and replaces it only once
/// complete; stopped part-way, it leaves the earlier export byte for byte and no temp file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_export_stopped_part_way_leaves_the_earlier_export() {
    let sim = start_sim(listed(23, 5)).await;
    let dir = work_dir("export-forced-stop");
    let env = sim_env(&sim);
    let out = dir.write("out.csv", "the earlier export\n");
    let stderr = stop_a_forced_export(&dir, &env, &sim).await;
    assert!(!stderr.contains("--resume"), "nothing to resume: {stderr}");
    assert_eq!(
        std::fs::read_to_string(&out).ok().as_deref(),
        Some("the earlier export\n")
    );
    assert_eq!(names_in(&dir), ["out.csv"], "no temp or .unread file left");

    // Complete, it replaces the earlier export.
    let output = export(&dir, &env, &["--rate", "0", "--force"]).await;
    output.assert_code(0);
    assert_eq!(read_export(&dir).len(), 23);
}

/// A forced export that does not complete leaves the earlier export's `.unread` list as it was,
/// as it leaves the export: without the list, `--resume` took the earlier unread customers' empty
/// rows for customers holding nothing. Completed, it puts its own list in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_export_stopped_part_way_keeps_the_earlier_unread_list() {
    let mut config = listed(23, 5);
    // Customer 1's first read is refused for good (403 is not retried), customer 23's first two.
    let refused = || status(403, None);
    config.script = vec![
        fault(1, refused()),
        fault(23, refused()),
        fault(23, refused()),
    ];
    let sim = start_sim(config).await;
    let dir = work_dir("export-forced-unread");
    let env = sim_env(&sim);
    export(&dir, &env, &["--rate", "0"]).await.assert_code(1);
    let (out, list) = (dir.join("out.csv"), dir.join("out.csv.unread"));
    let earlier = std::fs::read(&out).expect("export");
    let earlier_list = std::fs::read_to_string(&list).expect("unread list");
    let mut listed_ids: Vec<&str> = earlier_list.lines().collect();
    listed_ids.sort();
    assert_eq!(listed_ids, [cid(1), cid(23)]);

    // Stopped after a few customers (not 23): nothing of the earlier export changes.
    stop_a_forced_export(&dir, &env, &sim).await;
    assert_eq!(std::fs::read(&out).expect("export"), earlier);
    assert_eq!(
        std::fs::read_to_string(&list).ok().as_deref(),
        Some(earlier_list.as_str()),
        "the earlier export's list of unread customers is kept"
    );
    let names = names_in(&dir);
    assert_eq!(names, ["out.csv", "out.csv.unread"], "no temporary file");

    // Completed (customer 23 refused again), it replaces both: its list names 23 alone.
    export(&dir, &env, &["--rate", "0", "--force"])
        .await
        .assert_code(1);
    assert_eq!(read_export(&dir).len(), 23);
    assert_eq!(
        std::fs::read_to_string(&list).ok(),
        Some(format!("{}\n", cid(23)))
    );
    let names = names_in(&dir);
    assert_eq!(names, ["out.csv", "out.csv.unread"], "no temporary file");
}

/// A forced export with unread customers over an earlier export that had none puts its list in
/// place (before the export, so that the new export never stands without it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_export_over_one_without_a_list_puts_its_own_in_place() {
    let mut config = listed(3, 5);
    // Customer 2's first read passes; the second (the forced export's) is refused.
    let pass = pc_qualify::simulator::FaultAction::Delay(Duration::ZERO);
    config.script = vec![fault(2, pass), fault(2, status(403, None))];
    let sim = start_sim(config).await;
    let dir = work_dir("export-forced-new-list");
    let env = sim_env(&sim);
    export(&dir, &env, &["--rate", "0"]).await.assert_code(0);
    assert!(!dir.join("out.csv.unread").exists(), "complete: no list");
    export(&dir, &env, &["--rate", "0", "--force"])
        .await
        .assert_code(1);
    let list = std::fs::read_to_string(dir.join("out.csv.unread")).ok();
    assert_eq!(list, Some(format!("{}\n", cid(2))));
    assert_eq!(
        names_in(&dir),
        ["out.csv", "out.csv.unread"],
        "no temporary file"
    );
}

/// `export --force` over `dir`'s `out.csv`, slow enough (4/s) to be stopped with SIGINT once a
/// few customers are read; checks that it says the earlier export was left, and returns stderr.
async fn stop_a_forced_export(dir: &TempDir, env: &[(String, String)], sim: &SimHandle) -> String {
    let before = sim.api_requests().len();
    let out = dir.s("out.csv");
    let args = [
        "export", "-o", &out, "--force", "--rate", "4", "--burst", "1",
    ];
    let mut child = pcq(&args).envs(env).spawn();
    child
        .wait_until("a few customers read", || {
            sim.api_requests().len() > before + 4
        })
        .await;
    child.wait_for_signal_handlers().await;
    child.signal("INT");
    let output = child.finish().await;
    output.assert_code(130);
    let stderr = output.stderr();
    assert!(stderr.contains("was left as it was"), "{stderr}");
    stderr
}

/// The names of the files in `dir`, sorted.
fn names_in(dir: &TempDir) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
