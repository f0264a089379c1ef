//! Shared helpers: a scratch directory, the simulator, and running the real binary.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use pc_qualify::domain::model::CustomerId;
pub use pc_qualify::simulator::{self, SimConfig, SimHandle};
use pc_qualify::simulator::{FaultAction, ScriptedFault};

/// A scratch directory removed when the test ends.
pub struct WorkDir {
    pub path: PathBuf,
}

impl WorkDir {
    pub fn new(name: &str) -> WorkDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "pcq-test-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create work dir");
        WorkDir { path }
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path.join(name);
        std::fs::write(&path, contents).expect("write file");
        path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The path of `name` as a string, for arguments.
    pub fn s(&self, name: &str) -> String {
        self.join(name).display().to_string()
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Starts a simulator on a free loopback port.
pub async fn start_sim(config: SimConfig) -> SimHandle {
    simulator::start(config, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("simulator starts")
}

/// Environment pointing the binary at `sim` with the sandbox's refresh-token credentials.
pub fn sim_env(sim: &SimHandle) -> Vec<(String, String)> {
    vec![
        ("PC_BASE_URL".into(), sim.base_url()),
        ("PC_AUTHORITY".into(), sim.base_url()),
        ("PC_TENANT_ID".into(), simulator::SANDBOX_TENANT.into()),
        ("PC_CLIENT_ID".into(), simulator::SANDBOX_CLIENT_ID.into()),
        (
            "PC_CLIENT_SECRET".into(),
            simulator::SANDBOX_CLIENT_SECRET.into(),
        ),
        (
            "PC_REFRESH_TOKEN".into(),
            simulator::SANDBOX_REFRESH_TOKEN.into(),
        ),
    ]
}

/// The binary with a clean environment: no PC_* variable leaks in from the developer's shell.
pub fn pcq(args: &[&str], env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pc-qualify"));
    for (key, _) in std::env::vars() {
        if key.starts_with("PC_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null());
    cmd
}

/// Runs the binary to completion off the async threads, so the in-process simulator keeps serving.
pub async fn run(args: &[&str], env: &[(String, String)]) -> Output {
    let mut cmd = pcq(args, env);
    tokio::task::spawn_blocking(move || cmd.output().expect("binary runs"))
        .await
        .expect("join")
}

/// Lossy text of a process's output.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The exact results header.
pub const RESULTS_HEADER: &str = "row,customer_id,qualification,outcome,http_status,vetting_status,vetting_reason,vetting_create_date,attempts,correlation_id,request_id,error_code,error_message,elapsed_ms";

/// Parses a results file into one map per row, keyed by column name.
pub fn results(path: &Path) -> Vec<HashMap<String, String>> {
    csv_rows(
        &std::fs::read_to_string(path).expect("results file readable"),
        RESULTS_HEADER,
    )
}

/// Parses CSV text whose header must be exactly `expected` into one map per row, keyed by
/// column name (results files and exports alike).
pub fn csv_rows(text: &str, expected: &str) -> Vec<HashMap<String, String>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().expect("header").clone();
    assert_eq!(headers.iter().collect::<Vec<_>>().join(","), expected);
    reader
        .records()
        .map(|r| {
            let r = r.expect("record");
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// The results rows sorted by their `row` column.
pub fn results_by_row(path: &Path) -> Vec<HashMap<String, String>> {
    let mut rows = results(path);
    rows.sort_by_key(|r| r["row"].parse::<u64>().expect("row number"));
    rows
}

/// A deterministic customer id for test rows.
pub fn cid(n: u32) -> String {
    format!("aaaaaaaa-0000-4000-8000-{n:012}")
}

/// The value of header `name` (lower-case) in a recorded request.
pub fn header<'a>(req: &'a simulator::RecordedRequest, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The recorded POSTs, in arrival order.
pub fn posts(sim: &SimHandle) -> Vec<simulator::RecordedRequest> {
    sim.api_requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect()
}

/// An input file of `n` StateOwnedEntity rows for `cid(1..=n)`.
pub fn soe_rows(n: u32) -> String {
    let mut input = String::from("customer_id,qualification\n");
    for i in 1..=n {
        input.push_str(&format!("{},StateOwnedEntity\n", cid(i)));
    }
    input
}

/// `pc-qualify COMMAND -i DIR/in.csv -o DIR/out.csv EXTRA...`.
pub async fn run_io(
    command: &str,
    dir: &WorkDir,
    env: &[(String, String)],
    extra: &[&str],
) -> Output {
    let (input, output) = (dir.s("in.csv"), dir.s("out.csv"));
    let mut args = vec![command, "-i", &input, "-o", &output];
    args.extend_from_slice(extra);
    run(&args, env).await
}

/// A scripted fault for customer `cid(n)`.
pub fn fault(n: u32, action: FaultAction) -> ScriptedFault {
    ScriptedFault {
        customer_id: CustomerId::parse(&cid(n)).expect("id"),
        action,
    }
}

/// A scripted error status, with a Retry-After value when given.
pub fn status(code: u16, retry_after: Option<&str>) -> FaultAction {
    FaultAction::Status {
        status: code,
        retry_after: retry_after.map(str::to_string),
    }
}

/// POSTs per customer id, with the request ids they carried.
pub fn posts_by_customer(sim: &SimHandle) -> HashMap<String, Vec<String>> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for post in posts(sim) {
        let customer = post.path.split('/').nth(3).unwrap_or_default().to_string();
        map.entry(customer).or_default().push(
            header(&post, "ms-requestid")
                .unwrap_or_default()
                .to_string(),
        );
    }
    map
}
