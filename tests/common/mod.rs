//! Shared helpers: scratch directories, the simulator, and one way to run a program (the
//! binary, or an outside tool such as `script`) with its exit code checked.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pc_qualify::domain::model::CustomerId;
pub use pc_qualify::simulator::{self, SimConfig, SimHandle};
use pc_qualify::simulator::{FaultAction, ScriptedFault};
pub use tempfile::TempDir;

/// The binary cargo built for this machine.
pub const BIN: &str = env!("CARGO_BIN_EXE_pc-qualify");

/// The binary under test and the program that runs it: [`BIN`] itself, or `PCQ_TEST_BIN` (the
/// Windows build, `pc-qualify.exe`) run through `PCQ_TEST_RUNNER` (`wine`), as `.ci/wine-tests`
/// sets them to run the `windows` tests against the Windows build.
pub fn binary() -> (Option<String>, String) {
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    (
        var("PCQ_TEST_RUNNER"),
        var("PCQ_TEST_BIN").unwrap_or_else(|| BIN.to_string()),
    )
}

/// Whether the binary under test is the Windows build run under Wine.
pub fn under_wine() -> bool {
    binary().0.is_some()
}

/// For a test that only means something against the Windows build under Wine (share modes, cmd.exe):
/// false, after a message a person sees, when the tests run the native binary; the caller returns.
/// Its name starts with `wine_only_` so the native pass of `.ci/run` leaves it out by name rather
/// than passing it unchecked, and `.ci/wine-tests` runs it.
#[track_caller]
pub fn wine_only() -> bool {
    if under_wine() {
        return true;
    }
    let message = "*** SKIPPED: needs the Windows build under Wine (.ci/wine-tests sets PCQ_TEST_BIN and PCQ_TEST_RUNNER); this test checked nothing ***";
    assert!(
        !in_ci(),
        "{message} (the CI environment variable is set, so this fails: run it through .ci/wine-tests)"
    );
    if let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
        let _ = writeln!(tty, "\n{message}\n");
    }
    eprintln!("\n{message}\n");
    false
}

/// How long a test waits for a sign that a child process got somewhere before it fails. Generous:
/// the suite shares two cores with other work, and a sign that comes is never waited out.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A scratch directory (removed when dropped); `name` only makes a leftover one recognisable.
pub fn work_dir(name: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("pcq-test-{name}-"))
        .tempdir()
        .expect("create work dir")
}

/// Files in a scratch directory, by name.
pub trait Scratch {
    /// Writes `name` and returns its path.
    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf;
    /// The path of `name`.
    fn join(&self, name: &str) -> PathBuf;
    /// The path of `name` as a string, for arguments.
    fn s(&self, name: &str) -> String;
}

impl Scratch for TempDir {
    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, contents).expect("write file");
        path
    }

    fn join(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    fn s(&self, name: &str) -> String {
        self.join(name).display().to_string()
    }
}

/// A program to run: the binary (`pcq`) or another tool (`Cmd::new`), built up with arguments,
/// environment and standard input, then run to the end (`output`, `run`) or started (`spawn`).
pub struct Cmd {
    command: Command,
    /// The command line, for failure messages.
    shown: String,
    stdin: Option<Vec<u8>>,
}

/// The binary under test ([`binary`]) with `args` and a clean environment.
pub fn pcq(args: &[&str]) -> Cmd {
    match binary() {
        (Some(runner), bin) => Cmd::new(runner).args(&[&bin]).args(args),
        (None, bin) => Cmd::new(bin).args(args),
    }
}

/// The binary as `pc-qualify COMMAND -i DIR/in.csv -o DIR/out.csv EXTRA...`.
pub fn pcq_io(command: &str, dir: &TempDir, extra: &[&str]) -> Cmd {
    let (input, output) = (dir.s("in.csv"), dir.s("out.csv"));
    pcq(&[command, "-i", &input, "-o", &output]).args(extra)
}

impl Cmd {
    /// `program` with no PC_* variable or RUST_LOG from the developer's shell, so that a test
    /// sees only the settings it gives; standard input is empty unless [`Cmd::stdin`] sets it.
    pub fn new(program: impl AsRef<OsStr>) -> Cmd {
        let mut command = Command::new(program.as_ref());
        for (key, _) in std::env::vars_os() {
            let name = key.to_string_lossy();
            if name.starts_with("PC_") || name == "RUST_LOG" {
                command.env_remove(&key);
            }
        }
        Cmd {
            command,
            shown: program.as_ref().to_string_lossy().into_owned(),
            stdin: None,
        }
    }

    pub fn args(mut self, args: &[&str]) -> Cmd {
        for arg in args {
            self.shown.push(' ');
            self.shown.push_str(arg);
        }
        self.command.args(args);
        self
    }

    /// Runs the program in `dir` (relative paths in its arguments start there).
    pub fn current_dir(mut self, dir: &Path) -> Cmd {
        self.command.current_dir(dir);
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Cmd {
        self.command.env(key, value);
        self
    }

    pub fn envs(mut self, env: &[(String, String)]) -> Cmd {
        self.command
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        self
    }

    /// Bytes for standard input: written whole and closed by `output`/`run`; written and kept
    /// open by `spawn` (until [`Running::close_stdin`] or the end).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(bytes.into());
        self
    }

    /// Runs the program to its end on this thread.
    pub fn output(self) -> Finished {
        let mut running = self.spawn();
        running.close_stdin();
        running.wait_blocking()
    }

    /// Runs the program to its end off the async threads, so an in-process simulator keeps serving.
    pub async fn run(self) -> Finished {
        tokio::task::spawn_blocking(move || self.output())
            .await
            .expect("join")
    }

    /// Starts the program with its output captured as it comes.
    pub fn spawn(mut self) -> Running {
        self.command
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self
            .command
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", self.shown));
        let mut stdin = child.stdin.take();
        if let (Some(pipe), Some(bytes)) = (stdin.as_mut(), self.stdin.as_ref()) {
            // The program may stop reading early (an error is the subject of some tests), so a
            // broken pipe here is theirs to report through the exit code and stderr.
            let _ = pipe.write_all(bytes);
        }
        let stdout = collect(child.stdout.take().expect("stdout"));
        let stderr = collect(child.stderr.take().expect("stderr"));
        Running {
            child,
            shown: self.shown,
            stdin,
            stdout,
            stderr,
        }
    }
}

/// A stream read to its end on a thread of its own; the bytes so far are readable at any time.
struct Collected {
    bytes: Arc<Mutex<Vec<u8>>>,
    reader: std::thread::JoinHandle<()>,
}

fn collect(mut stream: impl std::io::Read + Send + 'static) -> Collected {
    let bytes = Arc::new(Mutex::new(Vec::new()));
    let sink = bytes.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n @ 1..) = stream.read(&mut buf) {
            sink.lock()
                .expect("output buffer")
                .extend_from_slice(&buf[..n]);
        }
    });
    Collected { bytes, reader }
}

/// A started program.
pub struct Running {
    child: Child,
    shown: String,
    stdin: Option<ChildStdin>,
    stdout: Collected,
    stderr: Collected,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Standard error so far.
    pub fn stderr(&self) -> String {
        text(&self.stderr.bytes.lock().expect("stderr buffer"))
    }

    /// Standard output so far.
    pub fn stdout(&self) -> String {
        text(&self.stdout.bytes.lock().expect("stdout buffer"))
    }

    /// Ends standard input (the program reads its end).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Sends signal `name` (`INT`, `TERM`, `HUP`, `QUIT`, `KILL`) with kill(1). A program that
    /// has already ended fails the test with its output: its pid may be another process's by now.
    pub fn signal(&mut self, name: &str) {
        if let Some(status) = self.try_status() {
            self.drain();
            panic!(
                "{} ended ({status}) before SIG{name} was sent\nstdout:\n{}\nstderr:\n{}",
                self.shown,
                self.stdout(),
                self.stderr()
            );
        }
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} {}", self.pid());
    }

    /// The exit status, if the program has ended.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("wait")
    }

    /// Waits until `ready` holds of the program's stderr so far; fails the test (with the
    /// output) when it has not after [`READY_TIMEOUT`] or the program ended first.
    pub async fn wait_for_stderr(&mut self, what: &str, ready: impl Fn(&str) -> bool) {
        self.wait_until_seen(what, |me| ready(&me.stderr())).await;
    }

    /// As [`Running::wait_for_stderr`], of standard output.
    pub async fn wait_for_stdout(&mut self, what: &str, ready: impl Fn(&str) -> bool) {
        self.wait_until_seen(what, |me| ready(&me.stdout())).await;
    }

    /// Waits until `ready` holds (a file, a request the simulator received) while the program
    /// runs; fails the test with the program's output when it ended first or after
    /// [`READY_TIMEOUT`]. Unlike the free `wait_until`, a program that failed early says why at
    /// once, rather than after the timeout in silence (CI once waited 30 s on a Ctrl-C test's
    /// rows under Wine and learned nothing).
    pub async fn wait_until(&mut self, what: &str, mut ready: impl FnMut() -> bool) {
        self.wait_until_seen(what, |_| ready()).await;
    }

    async fn wait_until_seen(&mut self, what: &str, mut ready: impl FnMut(&Running) -> bool) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if ready(self) {
                return;
            }
            if let Some(status) = self.try_status() {
                // A last look: the sign may have come with the end.
                self.drain();
                if ready(self) {
                    return;
                }
                panic!(
                    "{} ended ({status}) before {what}\nstdout:\n{}\nstderr:\n{}",
                    self.shown,
                    self.stdout(),
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not get to {what} in {READY_TIMEOUT:?}\nstdout:\n{}\nstderr:\n{}",
                self.shown,
                self.stdout(),
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Once the program has ended: waits (a second at most) for its output to be read to the
    /// end, so a last look or a failure message has its last lines (the error, most often). The
    /// bound is there because a process it started (Wine's server) may hold the pipes open.
    fn drain(&self) {
        let deadline = Instant::now() + Duration::from_secs(1);
        while !(self.stdout.reader.is_finished() && self.stderr.reader.is_finished())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Elsewhere the kernel shows no caught-signal mask to read: the sign the caller waited
    /// for before (rows on file, requests received) is all there is.
    #[cfg(not(target_os = "linux"))]
    pub async fn wait_for_signal_handlers(&mut self) {}

    /// Waits until the program catches SIGINT, SIGTERM, SIGHUP and SIGQUIT (pc-qualify's stop
    /// handlers are in place), read from the kernel's view of the process: a signal sent before
    /// that would meet the default action and prove nothing about the handlers.
    #[cfg(target_os = "linux")]
    pub async fn wait_for_signal_handlers(&mut self) {
        // Bit n-1 of SigCgt is signal n: HUP 1, INT 2, QUIT 3, TERM 15.
        const WANTED: u64 = 1 | 1 << 1 | 1 << 2 | 1 << 14;
        let status = format!("/proc/{}/status", self.pid());
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let caught = std::fs::read_to_string(&status)
                .ok()
                .and_then(|s| {
                    let line = s.lines().find(|l| l.starts_with("SigCgt:"))?.to_string();
                    u64::from_str_radix(line["SigCgt:".len()..].trim(), 16).ok()
                })
                .unwrap_or(0);
            if caught & WANTED == WANTED {
                return;
            }
            if let Some(status) = self.try_status() {
                panic!(
                    "{} ended ({status}) before its signal handlers were in place\nstderr:\n{}",
                    self.shown,
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} has no signal handlers after {READY_TIMEOUT:?} (SigCgt {caught:x})\nstderr:\n{}",
                self.shown,
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for the end on this thread.
    fn wait_blocking(mut self) -> Finished {
        self.close_stdin();
        let status = self.child.wait().expect("wait");
        let take = |c: Collected| {
            c.reader.join().expect("output reader");
            std::mem::take(&mut *c.bytes.lock().expect("output buffer"))
        };
        let stdout = take(self.stdout);
        let stderr = take(self.stderr);
        Finished {
            output: Output {
                status,
                stdout,
                stderr,
            },
            shown: self.shown,
        }
    }

    /// Waits for the end off the async threads.
    pub async fn finish(self) -> Finished {
        tokio::task::spawn_blocking(move || self.wait_blocking())
            .await
            .expect("join")
    }

    /// Waits for the end, killing the program after `limit` (a sign-in that waits for a
    /// person never ends by itself); the exit status then says it was killed.
    pub async fn finish_within(mut self, limit: Duration) -> Finished {
        let started = Instant::now();
        while self.try_status().is_none() {
            if started.elapsed() > limit {
                let _ = self.child.kill();
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.finish().await
    }
}

/// A program that ended, with its output (and `Output`'s fields through `Deref`).
pub struct Finished {
    pub output: Output,
    shown: String,
}

impl std::ops::Deref for Finished {
    type Target = Output;

    fn deref(&self) -> &Output {
        &self.output
    }
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    pub fn stdout(&self) -> String {
        text(&self.output.stdout)
    }

    pub fn stderr(&self) -> String {
        text(&self.output.stderr)
    }

    /// Asserts the exit code; on a mismatch the message holds the command line and both streams.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Finished {
        assert_eq!(
            self.code(),
            Some(code),
            "exit status of `{}`\n--- stdout:\n{}\n--- stderr:\n{}",
            self.shown,
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// Polls `ready` until it holds; fails the test naming `what` after [`READY_TIMEOUT`]. Only where
/// no [`Running`] program is watched ([`Running::wait_until`] says at once why one ended); its
/// one caller, the ETXTBSY test, is Linux's alone.
#[cfg(target_os = "linux")]
pub async fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + READY_TIMEOUT;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "waited {READY_TIMEOUT:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether the `CI` environment variable says this is a CI run (set by CI services; anything
/// but empty, `0` or `false`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "FALSE" | "False"))
}

/// The first of `candidates` that runs (`PROGRAM ARGS` exits 0), for a test that needs an outside
/// program. None of them: under CI the test fails (CI installs them: `.ci/run`); elsewhere it is
/// skipped with a message a person sees, and the caller returns.
#[track_caller]
pub fn outside_program(candidates: &[&str], args: &[&str], install: &str) -> Option<String> {
    let found = candidates.iter().find(|name| {
        Command::new(name)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if let Some(name) = found {
        return Some((*name).to_string());
    }
    let message = format!(
        "*** SKIPPED: none of {candidates:?} runs ({install}); this test checked nothing ***"
    );
    assert!(
        !in_ci(),
        "{message} (the CI environment variable is set, so this fails)"
    );
    // libtest captures `eprintln!` of a passing test, so the message also goes straight to the
    // controlling terminal when there is one.
    if let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
        let _ = writeln!(tty, "\n{message}\n");
    }
    eprintln!("\n{message}\n");
    None
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

/// A simulator that answers as `script` says, and a work dir `name` whose `in.csv` holds `rows`
/// StateOwnedEntity rows ([`soe_rows`]).
pub async fn scripted(name: &str, rows: u32, script: Vec<ScriptedFault>) -> (SimHandle, TempDir) {
    let config = SimConfig {
        script,
        ..SimConfig::default()
    };
    sim_with_rows(name, rows, config).await
}

/// A simulator started with `config`, and a work dir `name` whose `in.csv` holds `rows`
/// StateOwnedEntity rows ([`soe_rows`]).
pub async fn sim_with_rows(name: &str, rows: u32, config: SimConfig) -> (SimHandle, TempDir) {
    let sim = start_sim(config).await;
    let dir = work_dir(name);
    dir.write("in.csv", soe_rows(rows));
    (sim, dir)
}

/// `run --resume` in `dir` against the simulator of `env`, which must exit 0.
pub async fn resume_ok(dir: &TempDir, env: &[(String, String)]) {
    pcq_io("run", dir, &["--resume"])
        .envs(env)
        .run()
        .await
        .assert_code(0);
}

/// Customer `n` was posted twice, the second time under a new request id.
pub fn assert_sent_again_under_a_new_id(sim: &SimHandle, n: u32) {
    let posted = posts_by_customer(sim);
    let ids = &posted[&cid(n)];
    assert_eq!(ids.len(), 2, "sent twice: {posted:?}");
    assert_ne!(ids[0], ids[1], "under a new id");
}

/// A simulator answering API calls after `latency_ms`, its environment, and a work dir `name`
/// whose `in.csv` holds `rows` StateOwnedEntity rows ([`soe_rows`]).
pub async fn sim_and_rows(
    name: &str,
    rows: u32,
    latency_ms: u64,
) -> (SimHandle, TempDir, Vec<(String, String)>) {
    let latency = Duration::from_millis(latency_ms);
    let config = SimConfig {
        latency,
        ..SimConfig::default()
    };
    let (sim, dir) = sim_with_rows(name, rows, config).await;
    let env = sim_env(&sim);
    (sim, dir, env)
}

/// `sim`'s environment with the sandbox's refresh token in `dir`'s `refresh-token` file
/// (`PC_REFRESH_TOKEN_FILE`, the path as `shown`) instead of `PC_REFRESH_TOKEN`.
pub fn token_file_env(
    sim: &SimHandle,
    dir: &TempDir,
    shown: impl Fn(&Path) -> String,
) -> (PathBuf, Vec<(String, String)>) {
    let token = format!("{}\n", pc_qualify::simulator::SANDBOX_REFRESH_TOKEN);
    let token_file = dir.write("refresh-token", token);
    let mut env: Vec<(String, String)> = sim_env(sim)
        .into_iter()
        .filter(|(k, _)| k != "PC_REFRESH_TOKEN")
        .collect();
    env.push(("PC_REFRESH_TOKEN_FILE".into(), shown(&token_file)));
    (token_file, env)
}

/// `path` is readable and writable by its owner alone (mode 0600), where modes exist.
pub fn assert_owner_only(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// An input file of `n` StateOwnedEntity rows for `cid(1..=n)`.
pub fn soe_rows(n: u32) -> String {
    let mut input = String::from("customer_id,qualification\n");
    for i in 1..=n {
        input.push_str(&format!("{},StateOwnedEntity\n", cid(i)));
    }
    input
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
/// A results row's outcome and attempts.
pub fn outcome_attempts(row: &HashMap<String, String>) -> (&str, &str) {
    (row["outcome"].as_str(), row["attempts"].as_str())
}

/// A results row's outcome, HTTP status and attempts.
pub fn outcome_status_attempts(row: &HashMap<String, String>) -> (&str, &str, &str) {
    (
        row["outcome"].as_str(),
        row["http_status"].as_str(),
        row["attempts"].as_str(),
    )
}

/// No customer was created twice: its POSTs answered 201 all carry one request id (a resend
/// under the same id is answered with the first answer, not acted on again). A customer may be
/// posted under several ids: a new one after every answer, as Microsoft's headers page asks.
pub fn assert_created_under_one_request_id(sim: &SimHandle) {
    let mut created: HashMap<String, HashSet<String>> = HashMap::new();
    for post in posts(sim).iter().filter(|p| p.status == 201) {
        let customer = post.path.split('/').nth(3).unwrap_or_default().to_string();
        let id = header(post, "ms-requestid").unwrap_or_default().to_string();
        created.entry(customer).or_default().insert(id);
    }
    for (customer, ids) in created {
        assert_eq!(ids.len(), 1, "{customer} was created under {ids:?}");
    }
}

/// The row numbers of a results file, in file order.
pub fn row_numbers(path: &Path) -> Vec<u64> {
    results(path)
        .iter()
        .map(|r| r["row"].parse().expect("row number"))
        .collect()
}

pub fn assert_rows_exactly_once(path: &Path, n: u64) {
    let mut rows = row_numbers(path);
    rows.sort_unstable();
    assert_eq!(
        rows,
        (1..=n).collect::<Vec<_>>(),
        "one results row per input row"
    );
}

/// The token requests (v1) the simulator received, decoded.
pub fn token_forms(sim: &SimHandle) -> Vec<Vec<(String, String)>> {
    sim.requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/oauth2/token"))
        .map(|r| {
            reqwest::Url::parse(&format!("http://x/?{}", r.body))
                .expect("form")
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .collect()
}

pub fn form_field(form: &[(String, String)], name: &str) -> Option<String> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}
