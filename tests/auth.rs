//! Tokens for a run: refresh-token and static access-token credentials, renewal when a token
//! expires or is refused, public and confidential clients, the rotated refresh token written back,
//! and the token endpoints of the simulator.

use std::time::Duration;

use crate::common::*;
use pc_qualify::simulator::FaultAction;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_renewed_once_and_the_row_resent() {
    // Row 1 is refused once (a token revoked early), row 2 every time (a user without the rights).
    let (sim, dir) = scripted(
        "refused",
        3,
        vec![
            fault(1, status(401, None)),
            fault(2, status(401, None)),
            fault(2, status(401, None)),
            fault(2, status(401, None)),
        ],
    )
    .await;
    let output = pcq_io("run", &dir, &["--concurrency", "1"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    let stderr = text(&output.stderr);
    // A refusal that a fresh token does not cure would fail every row: the run stops (issue 10.3).
    output.assert_code(2);
    assert!(stderr.contains("pc-qualify login"), "{stderr}");
    let rows = results_by_row(&dir.join("out.csv"));
    assert_eq!(outcome_attempts(&rows[0]), ("created", "2"));
    assert_eq!(
        outcome_status_attempts(&rows[1]),
        ("failed", "401", "2"),
        "a second refusal of a renewed token is final"
    );
    assert_eq!(rows.len(), 2, "row 3 is not sent after the stop");
    let bearer = |n: u32| -> Vec<String> {
        posts(&sim)
            .iter()
            .filter(|p| p.path.contains(&cid(n)))
            .map(|p| p.token_fingerprint.clone().unwrap_or_default())
            .collect()
    };
    let row1 = bearer(1);
    assert_eq!(row1.len(), 2);
    assert_ne!(row1[0], row1[1], "the resend carries a renewed token");
    assert_eq!(bearer(2).len(), 2, "row 2 is not resent a second time");
    // The first token, and one renewal per refusal.
    assert_eq!(sim.redemptions(), 3);
    assert!(
        !stderr.contains("sim-at-") && !stderr.contains("sim-rt-"),
        "no token in the log: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_token_lifetime_is_clamped_not_a_crash() {
    let (_sim, dir) = a_run_whose_token_expires_in(u64::MAX, "expires-in", 3).await;
    assert_rows_exactly_once(&dir.join("out.csv"), 3);
}

/// `expires_in: 0` put the renewal time at the moment the token came, so the token was never
/// reused: every API call fetched a new one (30 rows, 31 token requests). A token is kept for a
/// short minimum time whatever its figure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_said_to_expire_at_once_is_reused_not_fetched_per_call() {
    let (sim, dir) = a_run_whose_token_expires_in(0, "expires-in-0", 30).await;
    let rows = results(&dir.join("out.csv"));
    assert_eq!(rows.len(), 30);
    assert!(rows.iter().all(|r| r["outcome"] == "created"), "{rows:?}");
    // One token for the whole run, give or take a renewal on a very slow machine.
    let tokens = token_forms(&sim).len();
    assert!(tokens <= 3, "{tokens} token requests for 30 rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_token_expiring_mid_run_is_renewed_without_failed_rows() {
    let config = SimConfig {
        token_ttl: Duration::from_secs(1),
        latency: Duration::from_millis(100),
        ..SimConfig::default()
    };
    let sim = start_sim(config).await;
    let dir = work_dir("expiry");
    dir.write("in.csv", soe_rows(30));
    let output = pcq_io("run", &dir, &["--rate", "10", "--concurrency", "2"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(0);
    let rows = results(&dir.join("out.csv"));
    assert_eq!(rows.len(), 30);
    assert!(rows.iter().all(|r| r["outcome"] == "created"), "{rows:?}");
    assert!(
        sim.redemptions() >= 2,
        "the token was renewed during the run ({} redemptions)",
        sim.redemptions()
    );
}

/// A 429 from the token endpoint (Entra ID throttling an app, with Retry-After) was retried only
/// as a transport error or 5xx would be, that is not at all: it became a token error and stopped
/// the whole run (exit 2). It is a wait: the renewal waits out its Retry-After and the run goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_token_request_waits_its_retry_after_instead_of_stopping_the_run() {
    // The first token is issued; the renewal when it expires mid-run is throttled once.
    let sim = start_sim(SimConfig {
        token_ttl: Duration::from_secs(2),
        token_throttle_after: Some(1),
        token_throttle_count: Some(1),
        retry_after_secs: 1,
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("token-429");
    dir.write("in.csv", soe_rows(25));
    let output = pcq_io("run", &dir, &["--rate", "5", "--concurrency", "2"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    let stderr = text(&output.stderr);
    output.assert_code(0);
    let rows = results(&dir.join("out.csv"));
    assert_eq!(rows.len(), 25);
    assert!(rows.iter().all(|r| r["outcome"] == "created"), "{stderr}");
    let tokens: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/oauth2/token"))
        .collect();
    let throttled = tokens
        .iter()
        .position(|r| r.status == 429)
        .unwrap_or_else(|| panic!("no token request was throttled\n{stderr}"));
    let next = tokens
        .get(throttled + 1)
        .unwrap_or_else(|| panic!("the throttled token request was not retried\n{stderr}"));
    assert_eq!(next.status, 200, "{stderr}");
    // Never before the Retry-After (the answer left a little after `at_ms`).
    assert!(
        next.at_ms >= tokens[throttled].at_ms + 950,
        "retried {} ms after its 429 (Retry-After: 1)",
        next.at_ms - tokens[throttled].at_ms
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_exits_2_names_the_cause_and_posts_nothing() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("badsecret");
    dir.write(
        "in.csv",
        format!("customer_id,qualification\n{},StateOwnedEntity\n", cid(1)),
    );
    let mut env = sim_env(&sim);
    let secret = "wrong-secret-d41d8cd98f00b204";
    for (k, v) in env.iter_mut() {
        if k == "PC_CLIENT_SECRET" {
            *v = secret.into();
        }
    }
    let output = pcq_io("run", &dir, &["-vv"]).envs(&env).run().await;
    let stderr = text(&output.stderr);
    output.assert_code(2);
    assert!(stderr.contains("invalid_client"), "{stderr}");
    assert!(stderr.contains("AADSTS7000215"), "{stderr}");
    assert!(!stderr.contains(secret) && !text(&output.stdout).contains(secret));
    assert!(!stderr.contains(simulator::SANDBOX_REFRESH_TOKEN));
    assert!(posts(&sim).is_empty());
    assert!(!dir.join("out.csv").exists(), "no results file is created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_access_token_is_used_as_is() {
    let sim = start_sim(SimConfig::default()).await;
    // Redeem one token the way an operator would have, then hand it over.
    let form = format!(
        "grant_type=refresh_token&refresh_token={}&client_id={}&client_secret={}&resource=https%3A%2F%2Fapi.partnercenter.microsoft.com&scope=openid",
        simulator::SANDBOX_REFRESH_TOKEN,
        simulator::SANDBOX_CLIENT_ID,
        simulator::SANDBOX_CLIENT_SECRET
    );
    let answer: serde_json::Value = pc_qualify::partner_center::client::test_http_client()
        .post(format!(
            "{}/{}/oauth2/token",
            sim.base_url(),
            simulator::SANDBOX_TENANT
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("token call")
        .json()
        .await
        .expect("token json");
    let token = answer["access_token"]
        .as_str()
        .expect("access token")
        .to_string();
    let dir = work_dir("static");
    dir.write(
        "in.csv",
        format!("customer_id,qualification\n{},StateOwnedEntity\n", cid(1)),
    );
    let env = vec![
        ("PC_BASE_URL".to_string(), sim.base_url()),
        ("PC_ACCESS_TOKEN".to_string(), token.clone()),
    ];
    let output = pcq_io("run", &dir, &[]).envs(&env).run().await;
    output.assert_code(0);
    let posts = posts(&sim);
    assert_eq!(
        header(&posts[0], "authorization"),
        Some("Bearer <redacted>")
    );
    assert_eq!(
        posts[0].token_fingerprint,
        Some(simulator::token_fingerprint(&token)),
        "the given access token is sent as it is"
    );
    assert_eq!(sim.redemptions(), 1, "the tool redeemed nothing itself");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_token_file_is_rotated_for_the_next_night() {
    let (sim, dir, _) = sim_and_rows("tokenfile", 1, 0).await;
    let (token_file, env) = token_file_env(&sim, &dir, |p| p.display().to_string());
    let output = pcq_io("run", &dir, &[]).envs(&env).run().await;
    output.assert_code(0);
    let rotated = std::fs::read_to_string(&token_file).expect("token file");
    assert_ne!(rotated.trim(), simulator::SANDBOX_REFRESH_TOKEN);
    assert!(!rotated.trim().is_empty());
    assert_owner_only(&token_file);
    assert!(!text(&output.stderr).contains(rotated.trim()));
    // The next night starts from the rotated token.
    dir.write("in.csv", soe_rows(2));
    let output = pcq_io("run", &dir, &["--force"]).envs(&env).run().await;
    output.assert_code(0);
    assert_ne!(
        std::fs::read_to_string(&token_file)
            .expect("token file")
            .trim(),
        rotated.trim()
    );
}

/// Issue 22: a token file others could read stayed so until the first rotation, and a token
/// file that is a symbolic link was replaced by a regular file, leaving the old token at the
/// link's target (where the next night, or another job, would read it).
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_token_file_open_to_others_is_made_private_and_rotated_at_its_target() {
    use std::os::unix::fs::PermissionsExt as _;
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("tokenlink");
    dir.write("in.csv", soe_rows(1));
    let real = dir.write(
        "real-token",
        format!("{}\n", simulator::SANDBOX_REFRESH_TOKEN),
    );
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let link = dir.join("token-link");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let mut env: Vec<(String, String)> = sim_env(&sim)
        .into_iter()
        .filter(|(k, _)| k != "PC_REFRESH_TOKEN")
        .collect();
    env.push(("PC_REFRESH_TOKEN_FILE".into(), link.display().to_string()));
    let output = pcq_io("run", &dir, &[]).envs(&env).run().await;
    output.assert_code(0);
    assert!(
        output
            .stderr()
            .contains("open to other users (mode 644); it is now 0600"),
        "{}",
        output.stderr()
    );
    let meta = std::fs::symlink_metadata(&link).expect("link");
    assert!(meta.file_type().is_symlink(), "the link is still a link");
    let rotated = std::fs::read_to_string(&real).expect("token file");
    assert_ne!(rotated.trim(), simulator::SANDBOX_REFRESH_TOKEN);
    let mode = std::fs::metadata(&real).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// `sim_env` for a public client: no secret, the refresh token in a file.
fn public_env(sim: &SimHandle, token_file: &str) -> Vec<(String, String)> {
    sim_env(sim)
        .into_iter()
        .filter(|(k, _)| k != "PC_CLIENT_SECRET" && k != "PC_REFRESH_TOKEN")
        .chain([("PC_REFRESH_TOKEN_FILE".to_string(), token_file.to_string())])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_client_run_sends_no_secret_and_writes_the_rotated_token_back() {
    let sim = start_sim(SimConfig {
        public_client: true,
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("public");
    let token_file = dir.write(
        "refresh-token",
        format!("{}\n", simulator::SANDBOX_REFRESH_TOKEN),
    );
    dir.write("in.csv", soe_rows(3));
    let env = public_env(&sim, &token_file.display().to_string());
    let output = pcq_io("run", &dir, &[]).envs(&env).run().await;
    let stderr = text(&output.stderr);
    output.assert_code(0);
    let rows = results_by_row(&dir.join("out.csv"));
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["outcome"] == "created"), "{rows:?}");
    let forms = token_forms(&sim);
    assert!(!forms.is_empty());
    for form in &forms {
        assert_eq!(
            form_field(form, "client_secret"),
            None,
            "no client_secret field at all"
        );
        assert_eq!(
            form_field(form, "grant_type").as_deref(),
            Some("refresh_token")
        );
    }
    let saved = std::fs::read_to_string(&token_file).expect("token file");
    assert_ne!(saved.trim(), simulator::SANDBOX_REFRESH_TOKEN);
    assert!(
        sim.issued_refresh_token(saved.trim()),
        "the rotated token is written back"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(!stderr.contains(saved.trim()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_tells_public_from_confidential_clients() {
    // A secret sent to a public client is refused, as Entra ID does (AADSTS700025)...
    let sim = start_sim(SimConfig {
        public_client: true,
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("client-kind");
    dir.write("in.csv", soe_rows(1));
    let output = pcq_io("run", &dir, &[]).envs(&sim_env(&sim)).run().await;
    let stderr = text(&output.stderr);
    output.assert_code(2);
    assert!(stderr.contains("AADSTS700025"), "{stderr}");
    assert!(posts(&sim).is_empty());
    // ...and a confidential client without its secret too (AADSTS7000218).
    let sim = start_sim(SimConfig::default()).await;
    let token_file = dir.write("token", format!("{}\n", simulator::SANDBOX_REFRESH_TOKEN));
    let env = public_env(&sim, &token_file.display().to_string());
    let output = pcq_io("run", &dir, &["--force"]).envs(&env).run().await;
    let stderr = text(&output.stderr);
    output.assert_code(2);
    assert!(stderr.contains("AADSTS7000218"), "{stderr}");
    assert!(posts(&sim).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mfa_is_read_from_error_code_fields_not_from_digits_in_the_text() {
    let json401 = |body: &str| FaultAction::Json {
        status: 401,
        body: body.to_string(),
    };
    // The digits in free text: an ordinary 401, cured by a fresh token.
    let (sim, dir) = scripted(
        "mfa-digits",
        2,
        vec![fault(
            1,
            json401(r#"{"message":"token issued at 900421 has expired"}"#),
        )],
    )
    .await;
    let output = pcq_io("run", &dir, &["--rate", "0"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(0);
    let rows = results_by_row(&dir.join("out.csv"));
    assert!(rows.iter().all(|r| r["outcome"] == "created"), "{rows:?}");

    // Entra ID's `error_codes` list naming 900421: the run stops (exit 2), the row stays resumable.
    let (sim, dir) = scripted("mfa-error-codes", 1, vec![fault(
            1,
            json401(
                r#"{"error":"interaction_required","error_codes":[900421],"error_description":"MFA required"}"#,
            ),
        )]).await;
    let output = pcq_io("run", &dir, &["--rate", "0"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    let stderr = text(&output.stderr);
    output.assert_code(2);
    assert!(stderr.contains("multi-factor"), "{stderr}");
    assert!(stderr.contains("pc-qualify login"), "{stderr}");
    // Not renewed and resent: one POST only.
    assert_eq!(posts(&sim).len(), 1);
}

/// A refresh-token grant to the simulator's v2 endpoint: (status, body).
async fn refresh_v2(sim: &SimHandle) -> (u16, serde_json::Value) {
    pc_qualify::partner_center::client::install_tls_provider();
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let answer = http
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            sim.base_url(),
            simulator::SANDBOX_TENANT
        ))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", simulator::SANDBOX_CLIENT_ID),
            ("client_secret", simulator::SANDBOX_CLIENT_SECRET),
            ("refresh_token", simulator::SANDBOX_REFRESH_TOKEN),
            (
                "scope",
                "https://api.partnercenter.microsoft.com/user_impersonation offline_access",
            ),
        ])
        .send()
        .await
        .expect("token");
    let status = answer.status().as_u16();
    let body = answer.json().await.expect("JSON body");
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v2_token_endpoint_obeys_the_outage_switch_and_the_lifetime_override() {
    // Up for the first request, down from the second on.
    let sim = start_sim(SimConfig {
        token_outage_after: Some(1),
        token_expires_in: Some(u64::MAX),
        ..SimConfig::default()
    })
    .await;
    let (status, body) = refresh_v2(&sim).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], serde_json::json!(u64::MAX), "{body}");
    assert!(body["access_token"].is_string(), "{body}");
    let (status, body) = refresh_v2(&sim).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(body.get("access_token").is_none(), "{body}");
}

/// A run of `rows` rows in a work dir `name`, which must exit 0, against a simulator whose tokens
/// say they expire in `secs` seconds.
async fn a_run_whose_token_expires_in(secs: u64, name: &str, rows: u32) -> (SimHandle, TempDir) {
    let config = SimConfig {
        token_expires_in: Some(secs),
        ..SimConfig::default()
    };
    let (sim, dir) = sim_with_rows(name, rows, config).await;
    let output = pcq_io("run", &dir, &["--rate", "0"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(0);
    (sim, dir)
}
