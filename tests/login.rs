//! `pc-qualify login`: both flows against the simulator's v2.0 endpoints, the token file (checked
//! writable before anyone is asked to sign in), every device-code outcome, the body cap on the
//! identity platform's answers, and the simulator's PKCE checks.

use std::path::Path;

use crate::common::*;
use pc_qualify::partner_center::cloud::Cloud;
use pc_qualify::simulator::DevicePoll;

const SCOPE: &str = "https://api.partnercenter.microsoft.com/user_impersonation offline_access";

/// The sign-in settings for `sim`; `secret` makes it a confidential client.
pub(crate) fn login_env(sim: &SimHandle, secret: bool) -> Vec<(String, String)> {
    let mut env = vec![
        ("PC_AUTHORITY".to_string(), sim.base_url()),
        (
            "PC_TENANT_ID".to_string(),
            simulator::SANDBOX_TENANT.to_string(),
        ),
        (
            "PC_CLIENT_ID".to_string(),
            simulator::SANDBOX_CLIENT_ID.to_string(),
        ),
    ];
    if secret {
        env.push((
            "PC_CLIENT_SECRET".to_string(),
            simulator::SANDBOX_CLIENT_SECRET.to_string(),
        ));
    }
    env
}

/// Decoded fields of a form body or query string.
fn form(text: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{text}"))
        .expect("form parses")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn field(fields: &[(String, String)], name: &str) -> Option<String> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// The token requests the simulator received on `path_end`.
fn requests_to(sim: &SimHandle, path_end: &str) -> Vec<simulator::RecordedRequest> {
    sim.requests()
        .into_iter()
        .filter(|r| r.path.ends_with(path_end))
        .collect()
}

#[cfg(unix)]
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("token file")
        .permissions()
        .mode()
        & 0o777
}

/// Nothing the identity platform issued may reach the terminal.
fn assert_no_secrets(output: &std::process::Output, token: &str) {
    for stream in [text(&output.stdout), text(&output.stderr)] {
        assert!(!stream.contains(token), "token printed: {stream}");
        for prefix in ["sim-rt-", "sim-at-", "sim-dc-", "sim-ac-"] {
            assert!(!stream.contains(prefix), "{prefix}… printed: {stream}");
        }
        assert!(!stream.contains(simulator::SANDBOX_CLIENT_SECRET));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_code_login_polls_through_two_pending_answers_and_saves_the_token_privately() {
    let sim = start_sim(SimConfig {
        public_client: true,
        device_polls: vec![DevicePoll::Pending, DevicePoll::Pending],
        device_interval_secs: 1,
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("device");
    let token_file = dir.join("refresh-token");
    // PC_REFRESH_TOKEN_FILE is the default for --token-file.
    let mut env = login_env(&sim, false);
    env.push((
        "PC_REFRESH_TOKEN_FILE".into(),
        token_file.display().to_string(),
    ));
    let output = pcq(&["-v", "login", "--device-code"])
        .envs(&env)
        .run()
        .await;
    let stderr = text(&output.stderr);
    output.assert_code(0);
    // The service's own message: where to go and the code to enter.
    assert!(
        stderr.contains("https://microsoft.com/devicelogin") && stderr.contains("enter the code"),
        "{stderr}"
    );
    let saved = std::fs::read_to_string(&token_file).expect("token file written");
    let token = saved.trim();
    assert!(
        sim.issued_refresh_token(token),
        "the file holds the issued token"
    );
    assert_eq!(saved, format!("{token}\n"));
    #[cfg(unix)]
    assert_eq!(mode_of(&token_file), 0o600);
    assert_no_secrets(&output, token);
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("ls").count(),
        1,
        "no temporary file left beside the token file"
    );

    let devicecode = requests_to(&sim, "/oauth2/v2.0/devicecode");
    assert_eq!(devicecode.len(), 1);
    let fields = form(&devicecode[0].body);
    assert_eq!(field(&fields, "scope").as_deref(), Some(SCOPE));
    assert_eq!(
        devicecode[0].path,
        format!("/{}/oauth2/v2.0/devicecode", simulator::SANDBOX_TENANT)
    );
    let polls = requests_to(&sim, "/oauth2/v2.0/token");
    let statuses: Vec<u16> = polls.iter().map(|p| p.status).collect();
    assert_eq!(
        statuses,
        vec![400, 400, 200],
        "two pending answers, then the token"
    );
    for poll in &polls {
        let fields = form(&poll.body);
        assert_eq!(
            field(&fields, "grant_type").as_deref(),
            Some("urn:ietf:params:oauth:grant-type:device_code")
        );
        assert!(
            field(&fields, "client_secret").is_none(),
            "a public client sends no secret"
        );
    }
    // The announced interval is honoured (the simulator would answer slow_down otherwise).
    for pair in polls.windows(2) {
        assert!(pair[1].at_ms - pair[0].at_ms >= 900, "{:?}", statuses);
    }
}

/// Regression: a poll the token endpoint answered 429 (or 5xx) ended the sign-in at once, as
/// if the user had been refused; only polls that got no answer were tolerated. A throttled
/// poll says nothing about the sign-in: polling goes on (three such in a row end it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_poll_does_not_end_a_device_code_sign_in() {
    let (polls, dir) = device_login_with_a_throttled_poll("device-429", 1).await;
    let file = dir.s("token");
    assert_eq!(polls.len(), 3, "429, pending, then the token");
    assert!(std::path::Path::new(&file).exists(), "the token is saved");
}

/// Regression: a throttled poll's `Retry-After` was not read (the sign-in's own `post` dropped
/// the headers), so the next poll came after the code's interval and was throttled again; three
/// such in a row ended the sign-in. The next poll now waits as long as the 429 asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_polls_retry_after_is_waited_out_before_the_next_poll() {
    let (polls, _dir) = device_login_with_a_throttled_poll("device-429-retry-after", 3).await;
    assert_eq!(polls.len(), 3, "429, pending, then the token");
    let gap = polls[1].at_ms - polls[0].at_ms;
    assert!(
        gap >= 2_900,
        "the poll after the 429 came {gap} ms after it"
    );
}

/// A device-code sign-in (interval 1 s) whose first poll is throttled with `Retry-After:
/// retry_after_secs`, then pending, then signed in; it must exit 0. The polls the token
/// endpoint received, and the directory holding the token file (`token`).
async fn device_login_with_a_throttled_poll(
    name: &str,
    retry_after_secs: u64,
) -> (Vec<simulator::RecordedRequest>, TempDir) {
    let sim = start_sim(SimConfig {
        public_client: true,
        device_polls: vec![DevicePoll::Pending],
        device_interval_secs: 1,
        // The device authorization request passes; the first poll is throttled.
        token_throttle_after: Some(1),
        token_throttle_count: Some(1),
        retry_after_secs,
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir(name);
    device_login(&sim, &dir.s("token")).await.assert_code(0);
    (requests_to(&sim, "/oauth2/v2.0/token"), dir)
}

/// `login --device-code --token-file FILE` against `sim` (a public client), to its end.
async fn device_login(sim: &SimHandle, file: &str) -> Finished {
    pcq(&["login", "--device-code", "--token-file", file])
        .envs(&login_env(sim, false))
        .run()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_down_adds_five_seconds_to_the_interval() {
    let sim = start_sim(SimConfig {
        public_client: true,
        device_polls: vec![DevicePoll::SlowDown],
        device_interval_secs: 1,
        // A client that ignored slow_down would be told again and again until this runs out.
        device_expires_secs: 20,
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("slowdown");
    let file = dir.s("token");
    let output = device_login(&sim, &file).await;
    output.assert_code(0);
    let polls = requests_to(&sim, "/oauth2/v2.0/token");
    assert_eq!(polls.len(), 2, "slow_down, then the token");
    assert!(
        polls[1].at_ms - polls[0].at_ms >= 5_900,
        "second poll {} ms after the first",
        polls[1].at_ms - polls[0].at_ms
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_denied_and_expired_device_logins_exit_2_and_save_nothing() {
    for (poll, expected) in [
        (DevicePoll::Declined, "declined (authorization_declined)"),
        (DevicePoll::AccessDenied, "declined (access_denied)"),
        (
            DevicePoll::Expired,
            "expired before the sign-in was finished",
        ),
    ] {
        let sim = start_sim(SimConfig {
            public_client: true,
            device_polls: vec![DevicePoll::Pending, poll],
            device_interval_secs: 1,
            ..SimConfig::default()
        })
        .await;
        let dir = work_dir("device-fail");
        std::fs::write(dir.join("token"), "older-token\n").expect("seed");
        let file = dir.s("token");
        let output = device_login(&sim, &file).await;
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{poll:?}: {stderr}");
        assert!(stderr.contains(expected), "{poll:?}: {stderr}");
        assert!(stderr.contains("nothing was saved"), "{stderr}");
        assert_eq!(
            std::fs::read_to_string(dir.join("token")).expect("kept"),
            "older-token\n",
            "the older token is left alone"
        );
        assert_eq!(requests_to(&sim, "/oauth2/v2.0/token").len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_needs_tenant_client_id_and_token_file() {
    let output = pcq(&["login", "--device-code"]).run().await;
    let stderr = text(&output.stderr);
    output.assert_code(2);
    for name in ["--tenant", "--client-id", "--token-file"] {
        assert!(stderr.contains(name), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_china_login_asks_for_the_china_resource() {
    let sim = start_sim(SimConfig {
        cloud: Cloud::China,
        public_client: true,
        device_interval_secs: 1,
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("china-login");
    let file = dir.s("token");
    let env = login_env(&sim, false);
    // The public cloud's resource is refused by the China simulator...
    let output = pcq(&["login", "--device-code", "--token-file", &file])
        .envs(&env)
        .run()
        .await;
    let stderr = text(&output.stderr);
    output.assert_code(2);
    assert!(stderr.contains("invalid_resource"), "{stderr}");
    // ...and China's is accepted (--authority from PC_AUTHORITY still points at the simulator).
    let output = pcq(&[
        "login",
        "--cloud",
        "china",
        "--device-code",
        "--token-file",
        &file,
    ])
    .envs(&env)
    .run()
    .await;
    output.assert_code(0);
    let asked = requests_to(&sim, "/oauth2/v2.0/devicecode");
    assert_eq!(
        field(&form(&asked[1].body), "scope").as_deref(),
        Some(
            "https://partner.partnercenterapi.microsoftonline.cn/user_impersonation offline_access"
        )
    );
    let token = std::fs::read_to_string(dir.join("token")).expect("saved");
    assert!(sim.issued_refresh_token(token.trim()));
}

/// The binary running `login` in the browser flow, and the sign-in address it printed.
pub(crate) struct BrowserLogin {
    pub(crate) child: Running,
    url: reqwest::Url,
}

impl BrowserLogin {
    pub(crate) async fn start(env: &[(String, String)], token_file: &str) -> BrowserLogin {
        let mut child = pcq(&["login", "--no-browser", "--token-file", token_file])
            .envs(env)
            .spawn();
        let address = |stderr: &str| {
            stderr
                .split_whitespace()
                .find(|w| w.contains("/oauth2/v2.0/authorize?"))
                .map(str::to_string)
        };
        child
            .wait_for_stderr("the sign-in address", |e| address(e).is_some())
            .await;
        let url = address(&child.stderr()).expect("the address");
        BrowserLogin {
            child,
            url: reqwest::Url::parse(&url).expect("a URL"),
        }
    }

    fn param(&self, name: &str) -> Option<String> {
        self.url
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// Waits for the process; returns its exit code and everything it wrote on stderr.
    pub(crate) async fn finish(self) -> (Option<i32>, String) {
        let done = self.child.finish().await;
        (done.code(), done.stderr())
    }
}

/// A browser that does not follow redirects, so the test sees each hop.
fn browser() -> reqwest::Client {
    pc_qualify::partner_center::client::install_tls_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_login_with_pkce_on_a_loopback_redirect() {
    // A confidential client: the secret goes with the code redemption.
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("browser");
    let file = dir.s("token");
    let login = BrowserLogin::start(&login_env(&sim, true), &file).await;
    assert_eq!(
        login.url.path(),
        format!("/{}/oauth2/v2.0/authorize", simulator::SANDBOX_TENANT)
    );
    assert_eq!(login.param("response_type").as_deref(), Some("code"));
    assert_eq!(
        login.param("code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(login.param("scope").as_deref(), Some(SCOPE));
    let redirect_uri = login.param("redirect_uri").expect("redirect_uri");
    let port: u16 = redirect_uri
        .strip_prefix("http://localhost:")
        .and_then(|p| p.parse().ok())
        .expect("http://localhost:PORT");
    assert!(port > 0);
    let state = login.param("state").expect("state");
    assert!(state.len() >= 32 && login.param("code_challenge").is_some_and(|c| c.len() == 43));

    // The test is the browser. Its other requests to the loopback address (a favicon) do not
    // end the wait...
    let http = browser();
    let favicon = http
        .get(format!("http://localhost:{port}/favicon.ico"))
        .send()
        .await
        .expect("favicon");
    assert_eq!(favicon.status(), 404);
    // ...the sign-in page sends it back to the loopback address...
    let answer = http.get(login.url.clone()).send().await.expect("authorize");
    assert_eq!(answer.status(), 302);
    let location = answer.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let back = reqwest::Url::parse(&location).expect("location URL");
    assert_eq!(back.port(), Some(port));
    assert!(back.query_pairs().any(|(k, v)| k == "state" && v == state));
    // ...where the binary answers the browser with a page.
    let page = http.get(location).send().await.expect("loopback");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("page").contains("Signed in"));

    let (code, stderr) = login.finish().await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("signed in"), "{stderr}");
    let token = std::fs::read_to_string(&file).expect("saved");
    assert!(sim.issued_refresh_token(token.trim()));
    #[cfg(unix)]
    assert_eq!(mode_of(Path::new(&file)), 0o600);
    assert!(!stderr.contains(token.trim()) && !stderr.contains("sim-rt-"));

    let redemptions = requests_to(&sim, "/oauth2/v2.0/token");
    assert_eq!(redemptions.len(), 1);
    let fields = form(&redemptions[0].body);
    assert_eq!(
        field(&fields, "grant_type").as_deref(),
        Some("authorization_code")
    );
    assert_eq!(field(&fields, "redirect_uri"), Some(redirect_uri));
    // Recorded redacted, but present: the simulator checked it against the challenge.
    assert_eq!(
        field(&fields, "code_verifier").as_deref(),
        Some("<redacted>")
    );
    assert_eq!(
        field(&fields, "client_secret").as_deref(),
        Some("<redacted>")
    );
    assert_eq!(redemptions[0].status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_with_another_state_is_refused_and_nothing_is_saved() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("state");
    let file = dir.s("token");
    let login = BrowserLogin::start(&login_env(&sim, true), &file).await;
    let http = browser();
    let answer = http.get(login.url.clone()).send().await.expect("authorize");
    let location = answer.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let mut forged = reqwest::Url::parse(&location).expect("url");
    let pairs: Vec<(String, String)> = forged
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                "forged".to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    let page = http.get(forged).send().await.expect("loopback");
    assert_eq!(page.status(), 400);
    let (code, stderr) = login.finish().await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("different `state`"), "{stderr}");
    assert!(!Path::new(&file).exists());
    assert!(
        requests_to(&sim, "/oauth2/v2.0/token").is_empty(),
        "the code is not redeemed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_consent_in_the_browser_exits_2() {
    let sim = start_sim(SimConfig {
        authorize_declines: true,
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("consent");
    let file = dir.s("token");
    let login = BrowserLogin::start(&login_env(&sim, true), &file).await;
    let http = browser();
    let answer = http.get(login.url.clone()).send().await.expect("authorize");
    let location = answer.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let _ = http.get(location).send().await.expect("loopback");
    let (code, stderr) = login.finish().await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("declined (access_denied)"), "{stderr}");
    assert!(!Path::new(&file).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_checks_the_pkce_verifier() {
    let sim = start_sim(SimConfig::default()).await;
    let http = browser();
    let authorize = format!(
        "{}/{}/oauth2/v2.0/authorize?client_id={}&response_type=code&redirect_uri=http%3A%2F%2Flocalhost%3A1&scope={}&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t5URWbmcs9mPsZ9Q&code_challenge_method=S256",
        sim.base_url(),
        simulator::SANDBOX_TENANT,
        simulator::SANDBOX_CLIENT_ID,
        "https%3A%2F%2Fapi.partnercenter.microsoft.com%2Fuser_impersonation%20offline_access",
    );
    let answer = http.get(authorize).send().await.expect("authorize");
    let location =
        reqwest::Url::parse(answer.headers()["location"].to_str().expect("loc")).expect("url");
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let redeem = |verifier: &'static str, code: String| {
        let http = http.clone();
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            sim.base_url(),
            simulator::SANDBOX_TENANT
        );
        async move {
            let answer = http
                .post(url)
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("client_id", simulator::SANDBOX_CLIENT_ID),
                    ("client_secret", simulator::SANDBOX_CLIENT_SECRET),
                    ("code", code.as_str()),
                    ("redirect_uri", "http://localhost:1"),
                    ("code_verifier", verifier),
                ])
                .send()
                .await
                .expect("token");
            let status = answer.status().as_u16();
            (status, answer.text().await.expect("body"))
        }
    };
    let (status, body) = redeem("not-the-verifier-not-the-verifier-not-the-verif", code).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("invalid_grant") && body.contains("AADSTS501481"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_checks_the_token_folder_before_asking_anyone_to_sign_in() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("login-unwritable");
    let folder = dir.s("");
    for flow in [
        // A folder where the file should be cannot be replaced by a file.
        &["login", "--device-code", "--token-file", &folder][..],
        &["login", "--no-browser", "--token-file", &folder][..],
    ] {
        let output = pcq(flow)
            .envs(&login_env(&sim, false))
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
    // The probe leaves nothing behind in a folder that is writable.
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
}

/// Issue 24: `login --token-file ~/.config/pc-qualify/refresh-token`, as the README shows it, on
/// a machine without that folder: login creates it, readable by the user only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_creates_a_missing_token_folder_for_the_user_only() {
    let sim = start_sim(SimConfig {
        public_client: true,
        device_interval_secs: 1,
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("login-folder");
    let folder = dir.join(".config").join("pc-qualify");
    let token = folder.join("refresh-token");
    let output = pcq(&[
        "login",
        "--device-code",
        "--token-file",
        &token.display().to_string(),
    ])
    .envs(&login_env(&sim, false))
    .run()
    .await;
    output.assert_code(0);
    assert!(token.is_file(), "the token was saved");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&folder)
            .expect("folder")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}

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
