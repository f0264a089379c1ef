//! Findings of an independent review: each test here failed on the code before its fix.

use crate::common::*;
use pc_qualify::domain::model::CustomerId;
use pc_qualify::simulator::{FaultAction, ScriptedFault};

fn scripted(n: u32, action: FaultAction) -> ScriptedFault {
    ScriptedFault {
        customer_id: CustomerId::parse(&cid(n)).expect("id"),
        action,
    }
}

// ---------------------------------------------------------------------------------------------
// 1. A 2xx naming another qualification is not this create's answer: the list decides.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2xx_naming_another_qualification_is_confirmed_from_the_list() {
    let other = r#"{"qualification":"Education","vettingStatus":"Approved","vettingCreateDate":"2020-12-04T20:54:24Z"}"#;
    let sim = start_sim(SimConfig {
        script: vec![
            // Not processed: the service's list will not show StateOwnedEntity.
            scripted(
                1,
                FaultAction::Json {
                    status: 201,
                    body: other.to_string(),
                },
            ),
            scripted(
                2,
                FaultAction::Json {
                    status: 200,
                    body: format!(r#"{{"qualifications":[{other}]}}"#),
                },
            ),
        ],
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("other-qualification");
    dir.write("in.csv", soe_rows(3));
    let output = pcq_io("run", &dir, &["--rate", "0"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(1);
    let rows = results_by_row(&dir.join("out.csv"));
    assert_eq!(rows.len(), 3, "{rows:?}");
    for row in &rows[..2] {
        assert_eq!(row["outcome"], "failed", "{row:?}");
        assert_eq!(row["error_code"], "unconfirmed", "{row:?}");
        assert!(
            row["error_message"].contains("does not show StateOwnedEntity"),
            "{row:?}"
        );
        // Another qualification's vetting is not reported as this row's.
        assert_eq!(row["vetting_status"], "", "{row:?}");
    }
    assert_eq!(rows[2]["outcome"], "created", "{:?}", rows[2]);
    // Each of the two was checked against the customer's list.
    let reads: Vec<_> = sim
        .api_requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.path)
        .collect();
    for n in [1, 2] {
        assert!(
            reads.iter().any(|p| p.contains(&cid(n))),
            "customer {n} not read back: {reads:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2. MFA is read from error-code fields, not from digits anywhere in a 401 body.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mfa_is_read_from_error_code_fields_not_from_digits_in_the_text() {
    let json401 = |body: &str| FaultAction::Json {
        status: 401,
        body: body.to_string(),
    };
    // The digits in free text: an ordinary 401, cured by a fresh token.
    let sim = start_sim(SimConfig {
        script: vec![scripted(
            1,
            json401(r#"{"message":"token issued at 900421 has expired"}"#),
        )],
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("mfa-digits");
    dir.write("in.csv", soe_rows(2));
    let output = pcq_io("run", &dir, &["--rate", "0"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(0);
    let rows = results_by_row(&dir.join("out.csv"));
    assert!(rows.iter().all(|r| r["outcome"] == "created"), "{rows:?}");

    // Entra ID's `error_codes` list naming 900421: the run stops (exit 2), the row stays resumable.
    let sim = start_sim(SimConfig {
        script: vec![scripted(
            1,
            json401(
                r#"{"error":"interaction_required","error_codes":[900421],"error_description":"MFA required"}"#,
            ),
        )],
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("mfa-error-codes");
    dir.write("in.csv", soe_rows(1));
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

// ---------------------------------------------------------------------------------------------
// 3. `login` proves the token file writable before anyone signs in.

fn login_env(sim: &SimHandle) -> Vec<(String, String)> {
    vec![
        ("PC_AUTHORITY".to_string(), sim.base_url()),
        (
            "PC_TENANT_ID".to_string(),
            simulator::SANDBOX_TENANT.to_string(),
        ),
        (
            "PC_CLIENT_ID".to_string(),
            simulator::SANDBOX_CLIENT_ID.to_string(),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_checks_the_token_folder_before_asking_anyone_to_sign_in() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("login-unwritable");
    let missing = dir.join("no-such-folder").join("token");
    let missing = missing.display().to_string();
    for flow in [
        &["login", "--device-code", "--token-file", &missing][..],
        &["login", "--no-browser", "--token-file", &missing][..],
        // A folder where the file should be cannot be replaced by a file either.
        &["login", "--device-code", "--token-file", &dir.s("")][..],
    ] {
        let output = pcq(flow)
            .envs(&login_env(&sim))
            .spawn()
            .finish_within(std::time::Duration::from_secs(20))
            .await;
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flow:?}: {stderr}");
        assert!(stderr.contains("token file"), "{flow:?}: {stderr}");
        // Nobody was asked to sign in.
        assert!(!stderr.contains("sign in"), "{flow:?}: {stderr}");
        assert!(!stderr.contains("To sign in"), "{flow:?}: {stderr}");
    }
    let asked: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/devicecode") || r.path.contains("/authorize"))
        .collect();
    assert!(asked.is_empty(), "{asked:?}");
    assert!(!std::path::Path::new(&missing).exists());
    // The probe leaves nothing behind in a folder that is writable.
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
}

// ---------------------------------------------------------------------------------------------
// 4. The identity endpoints' answers are read under the body cap.

/// A raw identity endpoint: `/devicecode` answers a valid device authorization padded to
/// `pad` bytes, `/token` answers `expired_token`. Returns its address and the paths it saw.
async fn padded_identity_server(
    pad: usize,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                log.lock().expect("log").push(path.clone());
                let body = if path.ends_with("/devicecode") {
                    let mut body = br#"{"device_code":"dc-1","user_code":"PADDED42","verification_uri":"https://microsoft.com/devicelogin","expires_in":900,"interval":1,"message":"To sign in, enter PADDED42"}"#.to_vec();
                    body.resize(pad, b' ');
                    body
                } else {
                    br#"{"error":"expired_token","error_description":"AADSTS70020: expired"}"#
                        .to_vec()
                };
                let status = if path.ends_with("/devicecode") {
                    "200 OK"
                } else {
                    "400 Bad Request"
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_refuses_an_oversized_identity_answer() {
    let (addr, seen) = padded_identity_server(3 * 1024 * 1024).await;
    let dir = work_dir("login-oversized");
    let env = vec![
        ("PC_AUTHORITY".to_string(), format!("http://{addr}")),
        ("PC_TENANT_ID".to_string(), "contoso".to_string()),
        ("PC_CLIENT_ID".to_string(), "app".to_string()),
    ];
    let output = pcq(&["login", "--device-code", "--token-file", &dir.s("token")])
        .envs(&env)
        .spawn()
        .finish_within(std::time::Duration::from_secs(30))
        .await;
    let stderr = text(&output.stderr);
    output.assert_code(2);
    // The oversized answer was not taken: no code shown, no poll sent.
    assert!(!stderr.contains("PADDED42"), "{stderr}");
    assert!(stderr.contains("body could not be read"), "{stderr}");
    let seen = seen.lock().expect("log").clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].ends_with("/devicecode"), "{seen:?}");
    assert!(!dir.join("token").exists());
}

// ---------------------------------------------------------------------------------------------
// 5. The simulator's authorize endpoint insists on S256 PKCE.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_refuses_a_sign_in_without_s256_pkce() {
    let sim = start_sim(SimConfig::default()).await;
    pc_qualify::partner_center::client::install_tls_provider();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client");
    let authorize = |pkce: &str| {
        format!(
            "{}/{}/oauth2/v2.0/authorize?client_id={}&response_type=code&redirect_uri=http%3A%2F%2Flocalhost%3A1&scope={}&state=s1{pkce}",
            sim.base_url(),
            simulator::SANDBOX_TENANT,
            simulator::SANDBOX_CLIENT_ID,
            "https%3A%2F%2Fapi.partnercenter.microsoft.com%2Fuser_impersonation%20offline_access",
        )
    };
    let redirect_of = |answer: reqwest::Response| {
        let location = answer.headers()["location"]
            .to_str()
            .expect("loc")
            .to_string();
        let url = reqwest::Url::parse(&location).expect("url");
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        (
            param("code"),
            param("error"),
            param("error_description"),
            param("state"),
        )
    };
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t5URWbmcs9mPsZ9Q";
    for (pkce, aadsts) in [
        ("", "AADSTS9002325"),
        ("&code_challenge_method=S256", "AADSTS9002325"),
        (
            &format!("&code_challenge={CHALLENGE}&code_challenge_method=plain")[..],
            "AADSTS501491",
        ),
        // No method named means `plain` (RFC 7636 section 4.3).
        (&format!("&code_challenge={CHALLENGE}")[..], "AADSTS501491"),
    ] {
        let answer = http.get(authorize(pkce)).send().await.expect("authorize");
        assert_eq!(answer.status().as_u16(), 302, "{pkce}");
        let (code, error, description, state) = redirect_of(answer);
        assert_eq!(code, None, "{pkce}: a code was issued without S256 PKCE");
        assert_eq!(error.as_deref(), Some("invalid_request"), "{pkce}");
        assert!(
            description
                .as_deref()
                .is_some_and(|d| d.starts_with(aadsts)),
            "{pkce}: {description:?}"
        );
        // The error goes back to the client with its state, as Entra ID sends it.
        assert_eq!(state.as_deref(), Some("s1"), "{pkce}");
    }
    // S256 still gets a code, and the verifier redeems it.
    const VERIFIER: &str = "dBjftJeZ4CK-P5zXb0kTiBBe5hY-zp9kgvXKvgkfmA5";
    // BASE64URL(SHA256(VERIFIER)).
    const S256: &str = "8iHLwV3tL_KvfkJNW4coQHSxOPwPVJeDg2nsU1Uh1-0";
    let answer = http
        .get(authorize(&format!(
            "&code_challenge={S256}&code_challenge_method=S256"
        )))
        .send()
        .await
        .expect("authorize");
    let (code, error, _, _) = redirect_of(answer);
    assert_eq!(error, None);
    let code = code.expect("a code for S256");
    let answer = http
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            sim.base_url(),
            simulator::SANDBOX_TENANT
        ))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", simulator::SANDBOX_CLIENT_ID),
            ("client_secret", simulator::SANDBOX_CLIENT_SECRET),
            ("code", code.as_str()),
            ("redirect_uri", "http://localhost:1"),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .expect("token");
    let status = answer.status().as_u16();
    let body = answer.text().await.expect("body");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("refresh_token"), "{body}");
}

// ---------------------------------------------------------------------------------------------
// 6. The simulator's v2 token endpoint obeys the outage switch and `token_expires_in`.

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

// ---------------------------------------------------------------------------------------------
// 7. The simulator's request log keeps no credential.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_request_log_holds_no_token() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("log-redacted");
    dir.write("in.csv", soe_rows(2));
    let output = pcq_io("run", &dir, &["--rate", "0"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(0);
    pc_qualify::partner_center::client::install_tls_provider();
    let served = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .get(format!("{}/_sim/requests", sim.base_url()))
        .send()
        .await
        .expect("log")
        .text()
        .await
        .expect("text");
    for secret in [
        "sim-at-",
        "sim-rt-",
        simulator::SANDBOX_REFRESH_TOKEN,
        simulator::SANDBOX_CLIENT_SECRET,
    ] {
        assert!(!served.contains(secret), "{secret} in {served}");
    }
    let api = sim.api_requests();
    assert_eq!(api.len(), 2);
    for request in &api {
        assert_eq!(header(request, "authorization"), Some("Bearer <redacted>"));
    }
    // One token for the run: the same fingerprint on both calls.
    assert!(api[0].token_fingerprint.is_some());
    assert_eq!(api[0].token_fingerprint, api[1].token_fingerprint);
}

// ---------------------------------------------------------------------------------------------
// 9. `--cloud china` alone switches where the tool goes: the token service and Partner Center.

/// An HTTPS proxy that records each CONNECT authority and refuses the tunnel.
async fn refusing_proxy() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let addr = listener.local_addr().expect("proxy addr");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    if client.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = match head.strip_prefix("CONNECT ") {
                    Some(rest) => rest.split_whitespace().next().unwrap_or("").to_string(),
                    // A plain-HTTP request through the proxy: record its target too.
                    None => head.lines().next().unwrap_or("").to_string(),
                };
                log.lock().expect("log").push(target);
                let _ = client
                    .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    (addr, seen)
}

fn proxy_env(proxy: std::net::SocketAddr) -> Vec<(String, String)> {
    let url = format!("http://{proxy}");
    vec![
        ("HTTPS_PROXY".to_string(), url.clone()),
        ("https_proxy".to_string(), url.clone()),
        ("HTTP_PROXY".to_string(), url.clone()),
        ("http_proxy".to_string(), url),
        ("NO_PROXY".to_string(), String::new()),
        ("no_proxy".to_string(), String::new()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_china_alone_sends_the_tool_to_chinas_hosts() {
    const CHINA_LOGIN: &str = "login.chinacloudapi.cn:443";
    const CHINA_API: &str = "partner.partnercenterapi.microsoftonline.cn:443";
    let flags = [
        "--cloud",
        "china",
        "--max-attempts",
        "1",
        "--max-backoff",
        "0.05",
        "--timeout",
        "5",
    ];

    // Refresh-token credentials, no PC_BASE_URL or PC_AUTHORITY: the token comes from China's
    // authority.
    let (proxy, seen) = refusing_proxy().await;
    let dir = work_dir("china-authority");
    dir.write("in.csv", soe_rows(1));
    let mut env = proxy_env(proxy);
    env.extend([
        (
            "PC_TENANT_ID".to_string(),
            "contoso.partner.onmschina.cn".to_string(),
        ),
        (
            "PC_CLIENT_ID".to_string(),
            simulator::SANDBOX_CLIENT_ID.to_string(),
        ),
        (
            "PC_CLIENT_SECRET".to_string(),
            simulator::SANDBOX_CLIENT_SECRET.to_string(),
        ),
        (
            "PC_REFRESH_TOKEN".to_string(),
            simulator::SANDBOX_REFRESH_TOKEN.to_string(),
        ),
    ]);
    let output = pcq_io("run", &dir, &flags).envs(&env).run().await;
    let stderr = text(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    let targets = seen.lock().expect("log").clone();
    assert!(
        !targets.is_empty(),
        "nothing went through the proxy: {stderr}"
    );
    assert!(
        targets.iter().all(|t| t == CHINA_LOGIN),
        "{targets:?}: {stderr}"
    );

    // A given access token: the API calls go to China's Partner Center.
    let (proxy, seen) = refusing_proxy().await;
    let dir = work_dir("china-api");
    dir.write("in.csv", soe_rows(1));
    let mut env = proxy_env(proxy);
    env.push((
        "PC_ACCESS_TOKEN".to_string(),
        "opaque-test-token".to_string(),
    ));
    let output = pcq_io("run", &dir, &flags).envs(&env).run().await;
    let stderr = text(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    let targets = seen.lock().expect("log").clone();
    assert!(
        !targets.is_empty(),
        "nothing went through the proxy: {stderr}"
    );
    assert!(
        targets.iter().all(|t| t == CHINA_API),
        "{targets:?}: {stderr}"
    );

    // `login --cloud china` signs in at China's authority too.
    let (proxy, seen) = refusing_proxy().await;
    let dir = work_dir("china-login");
    let mut env = proxy_env(proxy);
    env.extend([
        (
            "PC_TENANT_ID".to_string(),
            "contoso.partner.onmschina.cn".to_string(),
        ),
        (
            "PC_CLIENT_ID".to_string(),
            simulator::SANDBOX_CLIENT_ID.to_string(),
        ),
    ]);
    let token = dir.s("token");
    let output = pcq(&[
        "login",
        "--cloud",
        "china",
        "--device-code",
        "--token-file",
        &token,
    ])
    .envs(&env)
    .spawn()
    .finish_within(std::time::Duration::from_secs(30))
    .await;
    let stderr = text(&output.stderr);
    output.assert_code(2);
    let targets = seen.lock().expect("log").clone();
    assert!(
        !targets.is_empty(),
        "nothing went through the proxy: {stderr}"
    );
    assert!(
        targets.iter().all(|t| t == CHINA_LOGIN),
        "{targets:?}: {stderr}"
    );
}
