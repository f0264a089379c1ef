//! `--cloud china`: China's token resource and hosts, from the flag or the config file, with
//! explicit URLs still winning; `--cloud usgov`: the US Government authority.

use crate::common::*;
use pc_qualify::partner_center::cloud::Cloud;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_china_asks_for_chinas_resource_and_explicit_urls_still_win() {
    let sim = start_sim(SimConfig {
        cloud: Cloud::China,
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("china");
    dir.write("in.csv", soe_rows(2));
    // PC_BASE_URL and PC_AUTHORITY point at the simulator playing China: they win over the cloud's.
    let env = sim_env(&sim);
    let output = pcq_io("run", &dir, &["--cloud", "china"])
        .envs(&env)
        .run()
        .await;
    output.assert_code(0);
    let forms = token_forms(&sim);
    assert_eq!(
        form_field(&forms[0], "resource").as_deref(),
        Some("https://partner.partnercenterapi.microsoftonline.cn")
    );
    assert_eq!(posts(&sim).len(), 2);
    // The same from the config file.
    let config = dir.write("china.toml", "cloud = \"china\"\n");
    let output = pcq_io(
        "run",
        &dir,
        &["--force", "--config", &config.display().to_string()],
    )
    .envs(&env)
    .run()
    .await;
    output.assert_code(0);
    // Without it, the public resource is refused by China's token service and nothing is sent.
    let output = pcq_io("run", &dir, &["--force"]).envs(&env).run().await;
    let stderr = text(&output.stderr);
    output.assert_code(2);
    assert!(
        stderr.contains("invalid_resource") && stderr.contains("AADSTS500011"),
        "{stderr}"
    );
    assert_eq!(posts(&sim).len(), 4, "the refused run posted nothing");
}

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

/// Every tunnel the refusing proxy was asked for went to `host`, and there was one at least.
fn assert_only_to(seen: &std::sync::Mutex<Vec<String>>, host: &str, what: &str, stderr: &str) {
    let targets = seen.lock().expect("log").clone();
    assert!(
        !targets.is_empty(),
        "{what}: nothing went through the proxy: {stderr}"
    );
    assert!(
        targets.iter().all(|t| t == host),
        "{what}: {targets:?}: {stderr}"
    );
}

/// With a given access token (no sign-in), `run` with `flags` sends its API calls to `api`.
async fn api_calls_go_to(flags: &[&str], api: &str) {
    let (proxy, seen) = refusing_proxy().await;
    let dir = work_dir("cloud-api");
    dir.write("in.csv", soe_rows(1));
    let mut env = proxy_env(proxy);
    env.push((
        "PC_ACCESS_TOKEN".to_string(),
        "opaque-test-token".to_string(),
    ));
    let output = pcq_io("run", &dir, flags).envs(&env).run().await;
    let stderr = text(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert_only_to(&seen, api, "run with a token", &stderr);
}

/// `login --cloud CLOUD` (device code, for `tenant`) signs in at `login_host`.
async fn login_signs_in_at(cloud: &str, tenant: &str, login_host: &str) {
    let (proxy, seen) = refusing_proxy().await;
    let dir = work_dir("cloud-login");
    let mut env = proxy_env(proxy);
    env.push(("PC_TENANT_ID".to_string(), tenant.to_string()));
    env.push((
        "PC_CLIENT_ID".to_string(),
        simulator::SANDBOX_CLIENT_ID.to_string(),
    ));
    let token = dir.s("token");
    let output = pcq(&[
        "login",
        "--cloud",
        cloud,
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
    assert_only_to(&seen, login_host, "login", &stderr);
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
    assert_only_to(&seen, CHINA_LOGIN, "run", &stderr);

    // A given access token: the API calls go to China's Partner Center.
    api_calls_go_to(&flags, CHINA_API).await;

    // `login --cloud china` signs in at China's authority too.
    login_signs_in_at("china", "contoso.partner.onmschina.cn", CHINA_LOGIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_usgov_signs_in_at_the_us_government_authority() {
    const USGOV_LOGIN: &str = "login.microsoftonline.us:443";
    const PUBLIC_API: &str = "api.partnercenter.microsoft.com:443";
    let flags = [
        "--cloud",
        "usgov",
        "--max-attempts",
        "1",
        "--max-backoff",
        "0.05",
        "--timeout",
        "5",
    ];
    let credentials = [
        ("PC_TENANT_ID", "contoso.onmicrosoft.us"),
        ("PC_CLIENT_ID", simulator::SANDBOX_CLIENT_ID),
        ("PC_CLIENT_SECRET", simulator::SANDBOX_CLIENT_SECRET),
        ("PC_REFRESH_TOKEN", simulator::SANDBOX_REFRESH_TOKEN),
    ];
    // Every working command signs in at login.microsoftonline.us.
    for command in ["run", "reconcile", "refresh", "export"] {
        let (proxy, seen) = refusing_proxy().await;
        let dir = work_dir("usgov-authority");
        if command == "refresh" {
            // refresh reads a results file.
            dir.write(
                "in.csv",
                format!(
                    "row,customer_id,qualification,outcome,http_status,vetting_status,vetting_reason,vetting_create_date,attempts,correlation_id,request_id,error_code,error_message,elapsed_ms\n1,{},StateOwnedEntity,created,201,,,,1,,,,,0\n",
                    cid(1)
                ),
            );
        } else {
            dir.write("in.csv", soe_rows(1));
        }
        let mut env = proxy_env(proxy);
        env.extend(credentials.map(|(k, v)| (k.to_string(), v.to_string())));
        let output = if command == "export" {
            pcq(&["export", "-o", &dir.s("out.csv")])
                .args(&flags)
                .envs(&env)
                .run()
                .await
        } else {
            pcq_io(command, &dir, &flags).envs(&env).run().await
        };
        let stderr = text(&output.stderr);
        assert_ne!(output.status.code(), Some(0), "{command}: {stderr}");
        assert_only_to(&seen, USGOV_LOGIN, command, &stderr);
    }

    // A given access token: the API calls go to the public Partner Center.
    api_calls_go_to(&flags, PUBLIC_API).await;

    // `login --cloud usgov` signs in there too.
    login_signs_in_at("usgov", credentials[0].1, USGOV_LOGIN).await;
}
