//! Tests that drive the simulator over HTTP, as a client would.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::*;
use crate::domain::model::CustomerId;

const EDU_APPROVED: &str = "11111111-1111-4111-8111-000000000001";
const EDU_IN_REVIEW: &str = "11111111-1111-4111-8111-000000000004";
const EDU_DENIED: &str = "11111111-1111-4111-8111-000000000005";
const SOE_APPROVED: &str = "11111111-1111-4111-8111-000000000006";
const NOT_FOUND: &str = "11111111-1111-4111-8111-000000000007";
const NO_RELATIONSHIP: &str = "11111111-1111-4111-8111-000000000008";

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn cid(text: &str) -> CustomerId {
    CustomerId::parse(text).expect("test id")
}

fn fresh_id(n: u32) -> String {
    format!("22222222-2222-4222-8222-{n:012}")
}

fn token_form(secret: &str, refresh: &str) -> String {
    format!(
        "grant_type=refresh_token&client_id={SANDBOX_CLIENT_ID}&client_secret={secret}\
         &refresh_token={refresh}&resource=https%3A%2F%2Fapi.partnercenter.microsoft.com&scope=openid"
    )
}

async fn redeem(
    client: &reqwest::Client,
    sim: &SimHandle,
    secret: &str,
    refresh: &str,
) -> reqwest::Response {
    client
        .post(format!("{}/{SANDBOX_TENANT}/oauth2/token", sim.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(token_form(secret, refresh))
        .send()
        .await
        .expect("token request")
}

/// Starts a simulator and redeems one access token.
async fn started(config: SimConfig) -> (SimHandle, reqwest::Client, String) {
    let sim = start(config, any_port()).await.expect("start");
    let client = crate::partner_center::client::test_http_client();
    let response = redeem(&client, &sim, SANDBOX_CLIENT_SECRET, SANDBOX_REFRESH_TOKEN).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("token json");
    let token = body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    (sim, client, token)
}

async fn post(
    client: &reqwest::Client,
    sim: &SimHandle,
    token: &str,
    customer: &str,
    query: &str,
    body: Value,
) -> (StatusCode, Value) {
    let response = client
        .post(format!(
            "{}/v1/customers/{customer}/qualifications{query}",
            sim.base_url()
        ))
        .bearer_auth(token)
        // A new id per call: the simulator answers a reused one with its earlier answer.
        .header(
            "MS-RequestId",
            crate::partner_center::client::new_uuid().to_string(),
        )
        .json(&body)
        .send()
        .await
        .expect("post");
    let status = response.status();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn get_json(client: &reqwest::Client, url: String, token: &str) -> (StatusCode, Value) {
    let response = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("get");
    let status = response.status();
    (status, response.json().await.expect("json"))
}

fn assert_pc_error(body: &Value, code: u64) {
    assert_eq!(body["code"].as_u64(), Some(code), "{body}");
    assert!(
        body["description"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    assert_eq!(body["source"], "PartnerFD");
    assert_eq!(body["data"], json!([]));
}

#[test]
fn sandbox_preload_has_the_promised_customers() {
    let config = SimConfig::sandbox();
    assert_eq!(config.preload.len(), 8);
    let states: Vec<String> = config
        .preload
        .iter()
        .map(|e| match &e.state {
            PreloadState::Holds(r) => format!(
                "{}:{}",
                r.qualification,
                r.vetting_status.as_deref().unwrap_or("")
            ),
            PreloadState::NotFound => "NotFound".into(),
            PreloadState::NoRelationship => "NoRelationship".into(),
        })
        .collect();
    assert_eq!(
        states,
        [
            "Education:Approved",
            "Education:Approved",
            "Education:Approved",
            "Education:InReview",
            "Education:Denied",
            "StateOwnedEntity:Approved",
            "NotFound",
            "NoRelationship"
        ]
    );
    for (n, entry) in config.preload.iter().enumerate() {
        assert_eq!(
            entry.customer_id,
            cid(&format!("11111111-1111-4111-8111-{:012}", n + 1))
        );
    }
}

#[tokio::test]
async fn token_redemption_succeeds_and_rotates_refresh_tokens() {
    let sim = start(SimConfig::default(), any_port())
        .await
        .expect("start");
    let client = crate::partner_center::client::test_http_client();
    let response = redeem(&client, &sim, SANDBOX_CLIENT_SECRET, SANDBOX_REFRESH_TOKEN).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], "3600", "expires_in is a string");
    assert_eq!(body["resource"], "https://api.partnercenter.microsoft.com");
    assert!(body["expires_on"]
        .as_str()
        .is_some_and(|s| s.parse::<u64>().is_ok()));
    let refresh = body["refresh_token"].as_str().expect("refresh").to_string();
    assert_ne!(refresh, SANDBOX_REFRESH_TOKEN);

    // The new refresh token works, and so does the old one.
    let second = redeem(&client, &sim, SANDBOX_CLIENT_SECRET, &refresh).await;
    assert_eq!(second.status(), StatusCode::OK);
    let third = redeem(&client, &sim, SANDBOX_CLIENT_SECRET, SANDBOX_REFRESH_TOKEN).await;
    assert_eq!(third.status(), StatusCode::OK);
    assert_eq!(sim.redemptions(), 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn token_redemption_rejects_bad_credentials() {
    let sim = start(SimConfig::default(), any_port())
        .await
        .expect("start");
    let client = crate::partner_center::client::test_http_client();

    let wrong_secret = redeem(&client, &sim, "guess", SANDBOX_REFRESH_TOKEN).await;
    assert_eq!(wrong_secret.status(), StatusCode::UNAUTHORIZED);
    let body: Value = wrong_secret.json().await.expect("json");
    assert_eq!(body["error"], "invalid_client");
    assert!(body["error_description"]
        .as_str()
        .is_some_and(|d| d.starts_with("AADSTS7000215")));

    let bad_grant = redeem(&client, &sim, SANDBOX_CLIENT_SECRET, "stale-token").await;
    assert_eq!(bad_grant.status(), StatusCode::BAD_REQUEST);
    let body: Value = bad_grant.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");
    assert!(body["error_description"]
        .as_str()
        .is_some_and(|d| d.starts_with("AADSTS70000")));

    let wrong_tenant = client
        .post(format!(
            "{}/contoso.onmicrosoft.com/oauth2/token",
            sim.base_url()
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(token_form(SANDBOX_CLIENT_SECRET, SANDBOX_REFRESH_TOKEN))
        .send()
        .await
        .expect("send");
    assert_eq!(wrong_tenant.status(), StatusCode::BAD_REQUEST);
    let body: Value = wrong_tenant.json().await.expect("json");
    assert!(body["error_description"]
        .as_str()
        .is_some_and(|d| d.starts_with("AADSTS90002")));

    let wrong_resource = client
        .post(format!("{}/{SANDBOX_TENANT}/oauth2/token", sim.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            token_form(SANDBOX_CLIENT_SECRET, SANDBOX_REFRESH_TOKEN)
                .replace("partnercenter", "graph"),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(wrong_resource.status(), StatusCode::BAD_REQUEST);

    assert_eq!(sim.redemptions(), 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn api_calls_need_a_live_token() {
    let config = SimConfig {
        token_ttl: Duration::from_secs(1),
        ..SimConfig::default()
    };
    let (sim, client, token) = started(config).await;
    let url = format!(
        "{}/v1/customers/{}/qualifications",
        sim.base_url(),
        fresh_id(1)
    );
    let (status, _) = get_json(&client, url.clone(), &token).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = get_json(&client, url.clone(), "made-up").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_pc_error(&body, 401);
    let missing = client.get(url.clone()).send().await.expect("get");
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = get_json(&client, url, &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "expired token");
    assert_pc_error(&body, 401);
    sim.shutdown().await;
}

#[tokio::test]
async fn both_contracts_create_qualifications() {
    let (sim, client, token) = started(SimConfig::default()).await;

    let (status, body) = post(
        &client,
        &sim,
        &token,
        &fresh_id(1),
        "",
        json!({"Qualification": "Education"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["qualification"], "Education");
    assert_eq!(body["vettingStatus"], "InReview");
    let date = body["vettingCreateDate"].as_str().expect("date");
    assert!(
        date.len() == 20 && date.ends_with('Z') && date.as_bytes()[10] == b'T',
        "{date}"
    );

    let (status, body) = post(
        &client,
        &sim,
        &token,
        &fresh_id(2),
        "",
        json!({"qualification": "Education", "educationSegment": "K12", "website": "example.edu"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["vettingStatus"], "InReview");

    let (status, body) = post(
        &client,
        &sim,
        &token,
        &fresh_id(3),
        "?code=482913",
        json!({"Qualification": "GovernmentCommunityCloud"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["vettingStatus"], "Approved");

    let (status, body) = post(
        &client,
        &sim,
        &token,
        &fresh_id(4),
        "",
        json!({"qualification": "GovernmentCommunityCloud", "validationCode": "482913"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (status, body) = post(
        &client,
        &sim,
        &token,
        &fresh_id(5).to_uppercase(),
        "",
        json!({"qualification": "StateOwnedEntity"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["vettingStatus"], "Approved");

    assert_eq!(
        sim.holdings(cid(&fresh_id(5)))[0].qualification,
        "StateOwnedEntity"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn contract_violations_are_rejected() {
    let (sim, client, token) = started(SimConfig::sandbox()).await;
    let id = fresh_id(9);
    let cases: Vec<(&str, Value, u64)> = vec![
        ("", json!({"qualification": "Education"}), 600031),
        (
            "",
            json!({"qualification": "Education", "educationSegment": "k12"}),
            600031,
        ),
        (
            "",
            json!({"qualification": "Education", "educationSegment": "K12", "segment": "x"}),
            600032,
        ),
        (
            "",
            json!({"qualification": "StateOwnedEntity", "educationSegment": "K12"}),
            600031,
        ),
        (
            "",
            json!({"qualification": "StateOwnedEntity", "website": "x.gov"}),
            600035,
        ),
        (
            "?code=482913",
            json!({"qualification": "Education", "educationSegment": "K12"}),
            600033,
        ),
        (
            "",
            json!({"qualification": "GovernmentCommunityCloud", "validationCode": "111111"}),
            600039,
        ),
        (
            "",
            json!({"qualification": "GovernmentCommunityCloud", "validationCode": 482913}),
            600039,
        ),
        (
            "",
            json!({"qualification": "GovernmentCommunityCloud"}),
            600039,
        ),
        (
            "",
            json!({"qualification": "StateOwnedEntity", "validationCode": "482913"}),
            600039,
        ),
        ("", json!({"qualification": "None"}), 600030),
        ("", json!({"qualification": "Nonprofit"}), 600030),
        (
            "",
            json!({"qualification": "education", "educationSegment": "K12"}),
            600030,
        ),
        (
            "",
            json!({"qualification": "GCC", "validationCode": "482913"}),
            600030,
        ),
        ("", json!({"educationSegment": "K12"}), 600030),
        ("", json!(["Education"]), 900101),
        (
            "",
            json!({"Qualification": "Education", "educationSegment": "K12"}),
            600032,
        ),
        (
            "?code=482913",
            json!({"Qualification": "Education"}),
            600033,
        ),
        (
            "",
            json!({"Qualification": "GovernmentCommunityCloud"}),
            600039,
        ),
        (
            "?code=abc",
            json!({"Qualification": "GovernmentCommunityCloud"}),
            600039,
        ),
        (
            "?code=999999",
            json!({"Qualification": "GovernmentCommunityCloud"}),
            600039,
        ),
    ];
    for (query, body, code) in cases {
        let (status, answer) = post(&client, &sim, &token, &id, query, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{query} {body} -> {answer}"
        );
        assert_pc_error(&answer, code);
    }

    let malformed = client
        .post(format!(
            "{}/v1/customers/{id}/qualifications",
            sim.base_url()
        ))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"qualification\": ")
        .send()
        .await
        .expect("send");
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_pc_error(&malformed.json().await.expect("json"), 900101);

    let not_json = client
        .post(format!(
            "{}/v1/customers/{id}/qualifications",
            sim.base_url()
        ))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("{\"qualification\":\"StateOwnedEntity\"}")
        .send()
        .await
        .expect("send");
    assert_eq!(not_json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let ok = json!({"qualification": "StateOwnedEntity"});
    let (status, answer) = post(&client, &sim, &token, "not-a-guid", "", ok.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_pc_error(&answer, 900118);
    let (status, answer) = post(&client, &sim, &token, NOT_FOUND, "", ok.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_pc_error(&answer, 60003);
    let (status, answer) = post(&client, &sim, &token, NO_RELATIONSHIP, "", ok).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_pc_error(&answer, 20002);

    assert!(sim.holdings(cid(&id)).is_empty(), "nothing was created");
    sim.shutdown().await;
}

#[tokio::test]
async fn require_2022_rejects_the_old_contract() {
    let config = SimConfig {
        require_2022: true,
        ..SimConfig::default()
    };
    let (sim, client, token) = started(config).await;
    let (status, body) = post(
        &client,
        &sim,
        &token,
        &fresh_id(1),
        "",
        json!({"Qualification": "Education"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_pc_error(&body, 600034);
    let (status, _) = post(
        &client,
        &sim,
        &token,
        &fresh_id(1),
        "",
        json!({"qualification": "Education", "educationSegment": "HigherEducation"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    sim.shutdown().await;
}

#[tokio::test]
async fn held_qualifications_conflict() {
    let (sim, client, token) = started(SimConfig::sandbox()).await;
    let education = json!({"qualification": "Education", "educationSegment": "K12"});
    for id in [EDU_APPROVED, EDU_IN_REVIEW] {
        let (status, body) = post(&client, &sim, &token, id, "", education.clone()).await;
        assert_eq!(status, StatusCode::CONFLICT, "{id}");
        assert_eq!(
            body["description"],
            "Customer already has the Education qualification."
        );
    }
    let (status, _) = post(
        &client,
        &sim,
        &token,
        SOE_APPROVED,
        "",
        json!({"qualification": "StateOwnedEntity"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // A different qualification for the same customer is fine.
    let (status, _) = post(&client, &sim, &token, SOE_APPROVED, "", education.clone()).await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, _) = post(&client, &sim, &token, &fresh_id(1), "", education.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = post(&client, &sim, &token, &fresh_id(1), "", education).await;
    assert_eq!(status, StatusCode::CONFLICT, "InReview counts as held");
    sim.shutdown().await;
}

#[tokio::test]
async fn denied_customers_may_be_vetted_three_times_in_all() {
    let config = SimConfig {
        vetting_delay: Duration::ZERO,
        deny_rate: 1.0,
        ..SimConfig::sandbox()
    };
    let (sim, client, token) = started(config).await;
    let education = json!({"qualification": "Education", "educationSegment": "HigherEducation"});
    // The preloaded denial is attempt 1; two more are allowed.
    for attempt in 2..=3 {
        let (status, body) = post(&client, &sim, &token, EDU_DENIED, "", education.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "attempt {attempt}: {body}");
        let held = sim.holdings(cid(EDU_DENIED));
        assert_eq!(held.len(), 1, "{held:?}");
        assert_eq!(held[0].vetting_status.as_deref(), Some("Denied"));
        assert_eq!(
            held[0].vetting_reason.as_deref(),
            Some("Not an Education Customer")
        );
    }
    let (status, body) = post(&client, &sim, &token, EDU_DENIED, "", education).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_pc_error(&body, 600040);
    sim.shutdown().await;
}

#[tokio::test]
async fn reads_list_qualifications_and_settle_vetting() {
    let config = SimConfig {
        vetting_delay: Duration::from_millis(500),
        ..SimConfig::sandbox()
    };
    let (sim, client, token) = started(config).await;
    let base = sim.base_url();

    let (status, body) = get_json(
        &client,
        format!("{base}/v1/customers/{EDU_DENIED}/qualifications"),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!([{"qualification": "Education", "vettingStatus": "Denied",
                "vettingReason": "Not an Academic Domain", "vettingCreateDate": "2025-02-20T08:45:30Z"}])
    );
    let (_, body) = get_json(
        &client,
        format!("{base}/v1/customers/{SOE_APPROVED}/qualifications"),
        &token,
    )
    .await;
    assert_eq!(
        body,
        json!([{"qualification": "StateOwnedEntity", "vettingStatus": "Approved"}])
    );
    let (_, body) = get_json(
        &client,
        format!("{base}/v1/customers/{}/qualifications", fresh_id(1)),
        &token,
    )
    .await;
    assert_eq!(body, json!([]));

    let (status, body) = get_json(
        &client,
        format!("{base}/v1/customers/{NOT_FOUND}/qualifications"),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_pc_error(&body, 60003);
    let (status, _) = get_json(
        &client,
        format!("{base}/v1/customers/{NO_RELATIONSHIP}/qualifications"),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = get_json(
        &client,
        format!("{base}/v1/customers/xyz/qualifications"),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = get_json(
        &client,
        format!("{base}/v1/customers/%ZZ/qualifications"),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_pc_error(&body, 900118);

    let id = fresh_id(2);
    let (status, _) = post(
        &client,
        &sim,
        &token,
        &id,
        "",
        json!({"qualification": "Education", "educationSegment": "K12"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let url = format!("{base}/v1/customers/{id}/qualifications");
    let (_, body) = get_json(&client, url.clone(), &token).await;
    assert_eq!(body[0]["vettingStatus"], "InReview");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, body) = get_json(&client, url, &token).await;
    assert_eq!(body[0]["vettingStatus"], "Approved");
    sim.shutdown().await;
}

#[tokio::test]
async fn validations_list_and_count_down() {
    let config = SimConfig {
        validations: vec![ValidationEntry {
            validation_id: "1234".into(),
            organization_name: "Fabrikam Gov".into(),
            max_creates: Some(2),
            remaining_creates: Some(1),
        }],
        ..SimConfig::default()
    };
    let (sim, client, token) = started(config).await;
    let url = format!("{}/v1/customers/all/validations", sim.base_url());
    let (status, body) = get_json(&client, url.clone(), &token).await;
    assert_eq!(status, StatusCode::OK);
    let entry = &body[0];
    assert_eq!(entry["validationId"], "1234");
    assert_eq!(entry["organizationName"], "Fabrikam Gov");
    assert_eq!(entry["maxCreates"], 2);
    assert_eq!(entry["remainingCreates"], 1);
    assert!(entry["partnerId"]
        .as_str()
        .is_some_and(|p| uuid::Uuid::parse_str(p).is_ok()));
    let etag = entry["eTag"].clone();

    let gcc = json!({"qualification": "GovernmentCommunityCloud", "validationCode": "1234"});
    let (status, _) = post(&client, &sim, &token, &fresh_id(1), "", gcc.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, body) = get_json(&client, url, &token).await;
    assert_eq!(body[0]["remainingCreates"], 0);
    assert_ne!(body[0]["eTag"], etag);
    let (status, body) = post(&client, &sim, &token, &fresh_id(2), "", gcc).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_pc_error(&body, 600042);
    sim.shutdown().await;
}

#[tokio::test]
async fn scripted_faults_apply_in_order() {
    let id = fresh_id(1);
    let script =
        parse_script(&format!("{id} 503\n{id} 429:7\n{id} delay:200ms\n")).expect("script");
    let config = SimConfig {
        script,
        ..SimConfig::default()
    };
    let (sim, client, token) = started(config).await;
    let body = json!({"qualification": "StateOwnedEntity"});

    // Another customer is unaffected.
    let (status, _) = post(&client, &sim, &token, &fresh_id(2), "", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, answer) = post(&client, &sim, &token, &id, "", body.clone()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_pc_error(&answer, 503);

    let response = client
        .get(format!(
            "{}/v1/customers/{id}/qualifications",
            sim.base_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "7");
    let answer: Value = response.json().await.expect("json");
    assert_eq!(
        answer,
        json!({"statusCode": 429, "message": "Rate limit is exceeded. Try again in 7 seconds."})
    );

    let before = std::time::Instant::now();
    let (status, _) = post(&client, &sim, &token, &id, "", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(before.elapsed() >= Duration::from_millis(200));

    let (status, _) = post(&client, &sim, &token, &id, "", body).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "script used up; normal answers again"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn dropped_connections_are_transport_errors() {
    let id = fresh_id(1);
    let config = SimConfig {
        script: vec![ScriptedFault {
            customer_id: cid(&id),
            action: FaultAction::Drop,
        }],
        ..SimConfig::default()
    };
    let (sim, client, token) = started(config).await;
    let url = format!("{}/v1/customers/{id}/qualifications", sim.base_url());
    let body = json!({"qualification": "StateOwnedEntity"});
    let error = client
        .post(url.clone())
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .expect_err("the connection is dropped");
    assert!(error.status().is_none(), "{error:?}");
    assert!(
        sim.holdings(cid(&id)).is_empty(),
        "a dropped request is not processed"
    );

    let retry = client
        .post(url)
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .expect("retry");
    assert_eq!(retry.status(), StatusCode::CREATED);

    let statuses: Vec<u16> = sim.api_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [0, 201]);
    sim.shutdown().await;
}

#[tokio::test]
async fn random_faults_give_both_kinds() {
    let config = SimConfig {
        fault_rate: 1.0,
        seed: 42,
        record: false,
        ..SimConfig::default()
    };
    let (sim, client, token) = started(config).await;
    let url = format!(
        "{}/v1/customers/{}/qualifications",
        sim.base_url(),
        fresh_id(1)
    );
    let (mut unavailable, mut dropped) = (0, 0);
    for _ in 0..40 {
        match client.get(url.clone()).bearer_auth(&token).send().await {
            Ok(r) => {
                assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
                unavailable += 1;
            }
            Err(e) => {
                assert!(e.status().is_none());
                dropped += 1;
            }
        }
    }
    assert!(
        unavailable > 5 && dropped > 5,
        "{unavailable} 503s, {dropped} drops"
    );
    assert!(sim.requests().is_empty(), "recording is off");
    sim.shutdown().await;
}

#[tokio::test]
async fn throttling_answers_429_with_retry_after() {
    let config = SimConfig {
        throttle_rate: 2.0,
        retry_after_secs: 3,
        ..SimConfig::default()
    };
    let (sim, client, token) = started(config).await;
    let url = format!(
        "{}/v1/customers/{}/qualifications",
        sim.base_url(),
        fresh_id(1)
    );
    let mut throttled = 0;
    for _ in 0..6 {
        let response = client
            .get(url.clone())
            .bearer_auth(&token)
            .send()
            .await
            .expect("get");
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(response.headers()["retry-after"], "3");
            let body: Value = response.json().await.expect("json");
            assert_eq!(body["statusCode"], 429);
            throttled += 1;
        } else {
            assert_eq!(response.status(), StatusCode::OK);
        }
    }
    assert!(throttled >= 3, "{throttled} of 6 throttled");
    sim.shutdown().await;
}

#[tokio::test]
async fn the_quota_admits_its_burst_then_429s_in_the_service_shape_and_follows_its_schedule() {
    let config = SimConfig {
        throttle_rate: 0.5,
        throttle_burst: Some(4),
        // A schedule change long after this test: the quota in force is still 0.5/s.
        throttle_changes: vec![crate::simulator::RateChange {
            after: Duration::from_secs(3600),
            rate: 100.0,
        }],
        retry_after_secs: 1,
        ..SimConfig::default()
    };
    let (sim, client, token) = started(config).await;
    let url = format!(
        "{}/v1/customers/{}/qualifications",
        sim.base_url(),
        fresh_id(1)
    );
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let response = client
            .get(url.clone())
            .bearer_auth(&token)
            .send()
            .await
            .expect("get");
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            // 0.5/s: the next request fits in 2 s, more than the configured 1 s.
            let retry_after = response.headers()["retry-after"]
                .to_str()
                .expect("ascii")
                .to_string();
            assert_eq!(retry_after, "2");
            let body: Value = response.json().await.expect("json");
            assert_eq!(
                body,
                json!({"statusCode": 429, "message": "Rate limit is exceeded. Try again in 2 seconds."})
            );
        }
        statuses.push(status.as_u16());
    }
    // The burst of 4 at once, then 429s (which do not use up quota).
    assert_eq!(statuses, vec![200, 200, 200, 200, 429, 429, 429]);
    sim.shutdown().await;
}

#[test]
fn quota_settings_out_of_range_are_refused() {
    for config in [
        SimConfig {
            throttle_rate: 5.0,
            throttle_burst: Some(0),
            ..SimConfig::default()
        },
        SimConfig {
            throttle_changes: vec![crate::simulator::RateChange {
                after: Duration::from_secs(1),
                rate: 2.0,
            }],
            ..SimConfig::default()
        },
        SimConfig {
            throttle_rate: 5.0,
            throttle_changes: vec![crate::simulator::RateChange {
                after: Duration::from_secs(1),
                rate: 0.0,
            }],
            ..SimConfig::default()
        },
    ] {
        assert!(super::state::Shared::new(config).is_err());
    }
}

#[tokio::test]
async fn requests_are_recorded_with_secrets_redacted() {
    let (sim, client, token) = started(SimConfig::default()).await;
    let id = fresh_id(1);
    let (status, _) = post(
        &client,
        &sim,
        &token,
        &id,
        "?code=482913",
        json!({"Qualification": "GovernmentCommunityCloud"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let all = sim.requests();
    assert_eq!(all.len(), 2);
    let token_call = &all[0];
    assert_eq!(token_call.path, format!("/{SANDBOX_TENANT}/oauth2/token"));
    assert!(
        token_call.body.contains("client_secret=<redacted>"),
        "{}",
        token_call.body
    );
    assert!(token_call.body.contains("refresh_token=<redacted>"));
    assert!(!token_call.body.contains(SANDBOX_CLIENT_SECRET));
    assert!(token_call.body.contains("grant_type=refresh_token"));

    let api = sim.api_requests();
    assert_eq!(api.len(), 1);
    let call = &api[0];
    assert_eq!(call.method, "POST");
    assert_eq!(call.path, format!("/v1/customers/{id}/qualifications"));
    assert_eq!(call.query.as_deref(), Some("code=482913"));
    assert_eq!(call.body, r#"{"Qualification":"GovernmentCommunityCloud"}"#);
    assert_eq!(call.status, 201);
    let header = |name: &str| {
        call.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    // The credential is not kept: its scheme and a fingerprint tell what was sent.
    assert_eq!(
        header("authorization").as_deref(),
        Some("Bearer <redacted>")
    );
    assert_eq!(
        call.token_fingerprint.as_deref(),
        Some(super::token_fingerprint(&token).as_str())
    );
    assert!(header("ms-requestid").is_some_and(|id| uuid::Uuid::parse_str(&id).is_ok()));

    // The same log over HTTP, for a simulator run as a separate process.
    let over_http: Vec<RecordedRequest> = client
        .get(format!("{}/_sim/requests", sim.base_url()))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(over_http, all);
    // Nowhere in the served log is a token the service issued.
    let served = serde_json::to_string(&over_http).expect("serialize");
    assert!(!served.contains(token.as_str()), "{served}");
    assert!(!served.contains("sim-at-"), "{served}");
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_refused() {
    let (sim, client, token) = started(SimConfig::default()).await;
    let base = sim.base_url();
    let health = client
        .get(format!("{base}/_sim/health"))
        .send()
        .await
        .expect("get");
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.text().await.expect("text"), "ok");

    let (status, body) = get_json(&client, format!("{base}/v1/nothing-here"), &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_pc_error(&body, 404);
    let unauthenticated = client
        .get(format!("{base}/v1/nothing-here"))
        .send()
        .await
        .expect("get");
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);

    let wrong_method = client
        .delete(format!(
            "{base}/v1/customers/{}/qualifications",
            fresh_id(1)
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    sim.shutdown().await;
}

#[tokio::test]
async fn latency_is_added_to_api_answers_only() {
    let config = SimConfig {
        latency: Duration::from_millis(500),
        ..SimConfig::default()
    };
    let before = std::time::Instant::now();
    let (sim, client, token) = started(config).await;
    assert!(
        before.elapsed() < Duration::from_millis(500),
        "token endpoint is not delayed"
    );
    let before = std::time::Instant::now();
    let (status, _) = get_json(
        &client,
        format!("{}/v1/customers/all/validations", sim.base_url()),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Aimed 1.5 ms early so that a loaded client's average lands on the latency (routes.rs).
    assert!(before.elapsed() >= Duration::from_millis(497));
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_configuration_is_refused() {
    let bad = SimConfig {
        fault_rate: 1.5,
        ..SimConfig::default()
    };
    assert!(matches!(
        start(bad, any_port()).await,
        Err(SimError::Config(_))
    ));
    let id = cid(EDU_APPROVED);
    let contradictory = SimConfig {
        preload: vec![
            PreloadEntry {
                customer_id: id,
                state: PreloadState::NotFound,
            },
            PreloadEntry {
                customer_id: id,
                state: PreloadState::NoRelationship,
            },
        ],
        ..SimConfig::default()
    };
    assert!(matches!(
        start(contradictory, any_port()).await,
        Err(SimError::Config(_))
    ));
}

#[tokio::test]
async fn customer_list_pages_with_single_use_tokens() {
    let config = SimConfig {
        customer_page_cap: 2,
        ..SimConfig::sandbox()
    };
    let (sim, client, token) = started(config).await;
    let base = sim.base_url();
    // Asked for 500, the cap answers 2; the six related preloaded customers are listed.
    let (status, page) = get_json(&client, format!("{base}/v1/customers?size=500"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["items"][0]["id"], EDU_APPROVED);
    assert_eq!(
        page["items"][0]["companyProfile"]["companyName"],
        "Northwind Primary School"
    );
    let next = &page["links"]["next"];
    assert_eq!(next["uri"], "/customers?size=2&seekOperation=next");
    assert_eq!(next["headers"][0]["key"], "MS-ContinuationToken");
    let continuation = next["headers"][0]["value"]
        .as_str()
        .expect("token")
        .to_string();
    let follow = |continuation: String| {
        let client = client.clone();
        let (url, token) = (
            format!("{base}/v1/customers?size=2&seekOperation=next"),
            token.clone(),
        );
        async move {
            let response = client
                .get(url)
                .bearer_auth(token)
                .header("MS-ContinuationToken", continuation)
                .send()
                .await
                .expect("get");
            let status = response.status();
            (status, response.json::<Value>().await.expect("json"))
        }
    };
    let (status, second) = follow(continuation.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        second["items"][0]["id"],
        "11111111-1111-4111-8111-000000000003"
    );
    // A token is spent by its page: replaying it, or inventing one, is error 2000.
    let (status, body) = follow(continuation).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_pc_error(&body, 2000);
    let (status, body) = follow("made-up".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_pc_error(&body, 2000);
    // The last page carries no next link; missing and unrelated customers are not listed.
    let continuation = second["links"]["next"]["headers"][0]["value"]
        .as_str()
        .expect("token")
        .to_string();
    let (_, third) = follow(continuation.clone()).await;
    assert_eq!(third["items"][1]["id"], SOE_APPROVED);
    assert!(third["links"]["next"].is_null(), "{third}");
    assert_eq!(third["items"].as_array().map(Vec::len), Some(2));
}

/// A call without `MS-Contract-Version` is refused in the service's error body; a reused
/// `MS-RequestId` gets the answer given to it before, without acting again.
#[tokio::test]
async fn the_contract_version_is_required_and_a_reused_request_id_gets_its_first_answer() {
    let (sim, client, token) = started(SimConfig::default()).await;
    let id = "aaaaaaaa-0000-4000-8000-000000000001";
    let url = format!("{}/v1/customers/{id}/qualifications", sim.base_url());
    let bare = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(bare.status(), StatusCode::BAD_REQUEST);
    assert_pc_error(&bare.json().await.expect("json"), 400);

    let send = |request_id: &'static str| {
        client
            .post(&url)
            .bearer_auth(&token)
            .header("MS-RequestId", request_id)
            .json(&json!({"qualification": "StateOwnedEntity"}))
            .send()
    };
    let first = send("7d3c1b8e-6f0a-4d0b-9d7e-0c8f4a1e2b3c")
        .await
        .expect("post");
    assert_eq!(first.status(), StatusCode::CREATED);
    let first = first.text().await.expect("body");
    let again = send("7d3c1b8e-6f0a-4d0b-9d7e-0c8f4a1e2b3c")
        .await
        .expect("post");
    assert_eq!(
        again.status(),
        StatusCode::CREATED,
        "the first answer, not 409"
    );
    assert_eq!(again.text().await.expect("body"), first);
    let other = send("7d3c1b8e-6f0a-4d0b-9d7e-0c8f4a1e2b3d")
        .await
        .expect("post");
    assert_eq!(other.status(), StatusCode::CONFLICT);
    let id = crate::domain::model::CustomerId::parse(id).expect("id");
    assert_eq!(sim.holdings(id).len(), 1);
}
