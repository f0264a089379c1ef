//! The command line as clap sees it: commands, their flags and their help texts.

use super::*;

/// The exit-code table, as a literal so that `concat!` can append it to each command's help.
macro_rules! exit_codes {
    () => {
        concat!(
            "Exit codes:
  0    every row created, exists, duplicate or planned
  1    the run finished and some rows failed or were invalid
  2    nothing was sent: usage, configuration, credentials, unreadable input, or the
       results file is in use by another run; or the run was stopped for good (MFA
       sign-in needed, token endpoint down, service outage): --resume finishes it
  130  interrupted (",
            stop_signals!(),
            ")"
        )
    };
}

/// What interrupts a run (`signals::forward_signals`), as the platform names it: Windows has no
/// SIGHUP or SIGQUIT, and its users know the keys and events.
#[cfg(not(windows))]
macro_rules! stop_signals {
    () => {
        "SIGINT/SIGTERM/SIGHUP/SIGQUIT"
    };
}
#[cfg(windows)]
macro_rules! stop_signals {
    () => {
        "Ctrl-C, Ctrl-Break, console closed, log-off, shutdown"
    };
}

const RUN_HELP: &str = concat!(
    "\
Input: CSV (comma, semicolon, tab or pipe; UTF-8 or UTF-16 with BOM) or a workbook
(.xlsx, .xlsm, .xls, .ods; first sheet unless --sheet). See docs/input-formats.md.
Columns (header required; case, ' ', '-' and '_' ignored, so CustomerID = customer_id):
  customer_id        customer tenant GUID (aliases: customer_tenant_id, tenant_id, microsoft_id)
  qualification      Education, GovernmentCommunityCloud (GCC) or StateOwnedEntity
                     (alias: qualification_type)
  validation_code    GCC validation code, text (alias: code)           [optional]
  education_segment  K12 or HigherEducation (alias: segment)           [optional]
  website            the school's website, Education only (alias: domain) [optional]

Credentials come from the environment only: PC_ACCESS_TOKEN, or PC_TENANT_ID,
PC_CLIENT_ID and PC_REFRESH_TOKEN (or PC_REFRESH_TOKEN_FILE, written by `pc-qualify
login`), plus PC_CLIENT_SECRET for a confidential client (a public client has none).

Examples:
  pc-qualify run --sandbox --input samples/customers.csv --output results.csv
  pc-qualify run --input schools.csv --output results.csv --education-segment K12 --rate 2
  pc-qualify run --input gcc.csv --output gcc-results.csv --config config/default.toml

",
    exit_codes!()
);

const RECONCILE_HELP: &str = concat!(
    "\
For each valid row, reads the customer's qualifications first:
  held (any vetting status but Denied)  -> exists, nothing posted
  held with vetting Denied              -> exists, nothing posted unless --retry-denied
  not held                              -> posted as `run` does -> created
With --dry-run it reads but posts nothing: rows that would be posted are `planned`.
Running it twice in a row posts nothing the second time.

Examples:
  pc-qualify reconcile --input schools.csv --output nightly-results.csv --force
  pc-qualify reconcile --sandbox --input samples/reconcile.csv --output r.csv --dry-run
  pc-qualify reconcile --input schools.csv --output r.csv --metrics /var/lib/node_exporter/pc_qualify.prom

",
    exit_codes!()
);

const REFRESH_HELP: &str = "\
Reads an earlier results file, re-reads the vetting state of every created/exists row, and
writes the same rows with vetting_status, vetting_reason and vetting_create_date brought up to
date. Outcomes stay as they were; nothing is posted. Rows it cannot read keep their old values
and get an error_message. failed/invalid/duplicate rows are copied unchanged.

Exit codes: 0 every row that needed a read was read; 1 some could not be read; 2 the input is
not a results file, the output is in use by another run (or usage/credentials), or the refresh
was stopped for good (MFA sign-in needed, token endpoint down, outage); 130 interrupted.

Examples:
  pc-qualify refresh --input results.csv --output refreshed.csv
  pc-qualify refresh --input nightly-results.csv --output - | grep Denied";

const EXPORT_HELP: &str = "\
Lists every customer of the partner (GET /v1/customers, page by page) and reads each one's
qualifications through the same rate-limited pool and retries as `run`. Nothing is posted.

Columns: customer_id,company_name,domain,qualification,vetting_status,vetting_reason,
vetting_create_date. One row per qualification held; one row with an empty qualification for
a customer holding none. With --qualification Q: only rows for Q, plus one row with an empty
qualification per customer lacking Q (the input of the next `reconcile`/`run`). A customer whose
qualifications cannot be read gets a row with empty vetting columns and an error in the summary.

With --resume an interrupted export is continued: the customers already in the file are kept
and not read again (the last one, which a crash may have cut short, is), and customers whose
qualifications could not be read are read again. The list itself is always read from the start.

Exit codes: 0 every customer listed and read; 1 some could not be read, or the list broke off;
2 usage, configuration, credentials, or the list cannot be read at all; 130 interrupted (the file
holds the customers finished so far; --resume finishes it).

Examples:
  pc-qualify export --sandbox --output customers.csv
  pc-qualify export --output - --qualification Education > education.csv
  pc-qualify export --output nightly-export.csv --force --metrics export.prom";

const VALIDATE_HELP: &str = "\
Prints each problem as `row N: field: reason`, then a total. Exits 0 when every row is valid,
1 when some are not, 2 when the file cannot be read or lacks a required column. Warnings
(`row N: warning: ...`, e.g. one customer with both an Education and a GovernmentCommunityCloud
row) are printed too but do not change the exit code.

Examples:
  pc-qualify validate --input samples/customers.csv
  pc-qualify validate --input schools.csv --education-segment K12
  pc-qualify validate --input gcc.csv --api-contract 2021";

const LOGIN_HELP: &str = "\
Signs in as a Partner Center user and writes the refresh token to the token file (replaced
atomically, readable by you only); the token is never printed. `run`, `reconcile` and `refresh`
then use it with PC_REFRESH_TOKEN_FILE, and write each renewed token back to the same file.

Default: authorization code with PKCE on http://localhost:PORT; the sign-in address is printed
on stderr and opened in the browser. --device-code: prints the service's message (address and
code to enter on any device) and polls until the sign-in is finished, declined or expired.
PC_CLIENT_SECRET is sent when set (confidential client), left out otherwise (public client).

Exit codes: 0 signed in and saved; 2 not signed in (declined, expired, refused, state mismatch,
missing settings, token file not writable); 130 interrupted.

Examples:
  pc-qualify login --tenant contoso.onmicrosoft.com --client-id \"$APP_ID\" --token-file ~/.pcq-token
  PC_REFRESH_TOKEN_FILE=~/.pcq-token pc-qualify login --device-code
  pc-qualify login --cloud china --device-code --token-file ~/.pcq-token-cn";
const REPORT_HELP: &str = "\
Reads a results file (of run, reconcile or refresh) and writes one self-contained HTML page:
outcome and vetting counts, attempts and time per row, HTTP statuses, and a sortable table of
the failed and invalid rows with their error. The page loads nothing from the network, so it
can be mailed or opened offline. An existing page is overwritten. Add #sort=COLUMN or
#sort=COLUMN:desc to the page's address to open it sorted.

Exit codes: 0 written; 2 the input is not a results file, or the page cannot be written.

Examples:
  pc-qualify report results.csv --html report.html
  pc-qualify report nightly-results.csv --html /srv/www/qualifications/latest.html
  pc-qualify report results.csv --html - > report.html";

const COMPLETIONS_HELP: &str = "\
Examples:
  pc-qualify completions bash > /etc/bash_completion.d/pc-qualify
  pc-qualify completions zsh > \"${fpath[1]}/_pc-qualify\"
  pc-qualify completions fish > ~/.config/fish/completions/pc-qualify.fish";

#[cfg(feature = "sandbox")]
const SIMULATE_HELP: &str = "\
Serves the Partner Center endpoints pc-qualify uses, plus the token endpoint, on a loopback
address. Sandbox credentials: tenant sandbox.onmicrosoft.com, client id
00000000-5a9d-4b0c-8e11-5a9db0c8e111, secret sandbox-client-secret, refresh token
sandbox-refresh-token. GET /_sim/requests lists what it received.

Examples:
  pc-qualify simulate --listen 127.0.0.1:8080
  pc-qualify simulate --listen 127.0.0.1:0 --latency-ms 20 --fault-rate 0.05 --seed 7
  pc-qualify simulate --throttle-rate 10 --retry-after 2 --preload my-customers.csv
  pc-qualify simulate --throttle-rate 15 --throttle-burst 15 --throttle-change 20:6
  pc-qualify simulate --config sim.toml --listen 127.0.0.1:0";

/// Sets Microsoft Partner Center customer qualifications in bulk.
#[derive(Debug, Parser)]
#[command(name = "pc-qualify", version, about, after_long_help = exit_codes!())]
pub struct Cli {
    /// Logging options shared by every command.
    #[command(flatten)]
    pub log: LogArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Logging flags (logs go to stderr).
#[derive(Debug, Args)]
pub struct LogArgs {
    /// More log detail (-v debug, -vv trace)
    #[arg(short, long, action = clap::ArgAction::Count, global = true, display_order = 900)]
    pub verbose: u8,
    /// Only errors on stderr, no summary
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        display_order = 901
    )]
    pub quiet: bool,
    /// Log line format
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, display_order = 902)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set the qualification of every row of a CSV file or workbook
    #[command(after_long_help = RUN_HELP)]
    Run(RunArgs),
    /// Make Partner Center match the file: read each customer first, post only what is missing
    #[command(after_long_help = RECONCILE_HELP)]
    Reconcile(ReconcileArgs),
    /// Re-read the vetting state of an earlier results file's created/exists rows (never posts)
    #[command(after_long_help = REFRESH_HELP)]
    Refresh(RefreshArgs),
    /// List every customer and the qualifications it holds, as CSV (never posts)
    #[command(after_long_help = EXPORT_HELP)]
    Export(ExportArgs),
    /// Sign in interactively and save the refresh token (browser, or --device-code)
    #[command(after_long_help = LOGIN_HELP)]
    Login(crate::partner_center::login::LoginArgs),
    /// Check an input file without sending anything (no network, no credentials)
    #[command(after_long_help = VALIDATE_HELP)]
    Validate(ValidateArgs),
    /// Summarise a results file as one self-contained HTML page (charts and a sortable table)
    #[command(after_long_help = REPORT_HELP)]
    Report(ReportArgs),
    /// Serve the local stand-in for Partner Center
    #[command(after_long_help = SIMULATE_HELP)]
    #[cfg(feature = "sandbox")]
    Simulate(SimulateArgs),
    /// Print shell completions
    #[command(after_long_help = COMPLETIONS_HELP)]
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
}

/// Flags of `run` (and `reconcile`).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Input CSV or workbook (`-` for standard input)
    #[arg(short, long, value_name = "FILE")]
    pub input: String,
    /// Results CSV (`-` for standard output); never overwritten without --force
    #[arg(short, long, value_name = "FILE")]
    pub output: String,
    /// Overwrite an existing results file
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Continue an earlier run: rows already created/exists are kept and not sent again
    #[arg(long)]
    pub resume: bool,
    /// Validate and write `planned` rows; send no writes (run: nothing at all)
    #[arg(long)]
    pub dry_run: bool,
    /// How to read the input.
    #[command(flatten)]
    pub format: InputFormat,
    /// What every working command takes.
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// The flags every working command takes (run, reconcile, refresh, export): where the service is,
/// how hard to push it, the settings file, metrics and progress. `-q`, `-v` and `--log-format`
/// are global.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Run against a local simulator started in-process (no account needed)
    #[arg(long)]
    pub sandbox: bool,
    /// TOML settings file (flags and environment win over it)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Write Prometheus metrics here at the end (node_exporter textfile format)
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// No progress bar
    #[arg(long)]
    pub no_progress: bool,
    /// Tunables.
    #[command(flatten)]
    pub settings: Settings,
}

/// Flags of `reconcile`.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Everything `run` takes.
    #[command(flatten)]
    pub run: RunArgs,
    /// Post again where vetting was Denied (spends one of the customer's three vetting requests)
    #[arg(long)]
    pub retry_denied: bool,
}

/// Flags of `refresh`.
#[derive(Debug, Args)]
#[command(mut_args(hide_input_settings))]
pub struct RefreshArgs {
    /// An earlier results file
    #[arg(short, long, value_name = "FILE")]
    pub input: String,
    /// The refreshed results file (`-` for standard output); never overwritten without --force
    #[arg(short, long, value_name = "FILE")]
    pub output: String,
    /// Overwrite an existing output file
    #[arg(long)]
    pub force: bool,
    /// What every working command takes.
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// Flags of `export`.
#[derive(Debug, Args)]
#[command(mut_args(hide_input_settings))]
pub struct ExportArgs {
    /// The export CSV (`-` for standard output); never overwritten without --force
    #[arg(short, long, value_name = "FILE")]
    pub output: String,
    /// Overwrite an existing output file
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Continue an interrupted export: customers already in the file are not read again
    #[arg(long)]
    pub resume: bool,
    /// Only rows for this qualification, plus an empty-qualification row per customer lacking it
    #[arg(long, value_name = "QUALIFICATION", value_parser = Qualification::parse)]
    pub qualification: Option<Qualification>,
    /// What every working command takes.
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// Hides the input settings ([`InputSettings`], all of them): they ride along in the shared
/// service flags (one config file serves every command) but mean nothing to `refresh` and
/// `export`, which accept them without listing them.
fn hide_input_settings(arg: clap::Arg) -> clap::Arg {
    let input = InputSettings::augment_args(clap::Command::new("input"));
    let input = input.get_arguments().any(|a| a.get_id() == arg.get_id());
    let hidden = input || arg.is_hide_set();
    arg.hide(hidden)
}

/// Flags of `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Input CSV or workbook (`-` for standard input)
    #[arg(short, long, value_name = "FILE")]
    pub input: String,
    /// How to read the input.
    #[command(flatten)]
    pub format: InputFormat,
    /// TOML settings file (its api_contract, education_segment and validation_code are used)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// How rows become requests.
    #[command(flatten)]
    pub settings: InputSettings,
}

/// Flags of `report`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("page").required(true).multiple(true).args(["html", "xlsx"])))]
pub struct ReportArgs {
    /// A results file (for --xlsx also an export file)
    #[arg(value_name = "RESULTS")]
    pub results: PathBuf,
    /// Write the HTML page here (`-` for standard output)
    #[arg(long, value_name = "FILE")]
    pub html: Option<String>,
    /// Write an Excel workbook here: the rows as typed cells, and a summary sheet
    #[arg(long, value_name = "FILE")]
    pub xlsx: Option<PathBuf>,
}

#[cfg(feature = "sandbox")]
/// Flags of `simulate` (also the keys of its `--config` file).
#[derive(Debug, Default, Args, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulateArgs {
    /// TOML file with any of these settings (keys as the flags, `_` for `-`); flags win over it
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free one) [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Delay added to every API answer, in milliseconds [default: 0]
    #[arg(long, value_name = "MS")]
    pub latency_ms: Option<u64>,
    /// Lifetime of issued access tokens, in seconds [default: 3600]
    #[arg(long, value_name = "SECS")]
    pub token_ttl: Option<u64>,
    /// Fraction of API requests that fail (half 503, half dropped connections) [default: 0]
    #[arg(long, value_name = "FRACTION")]
    pub fault_rate: Option<f64>,
    /// The partner's quota: API requests per second allowed before 429s (0 = never throttle) [default: 0]
    #[arg(long, value_name = "N")]
    pub throttle_rate: Option<f64>,
    /// Requests the quota admits at once [default: one second's worth]
    #[arg(long, value_name = "N")]
    pub throttle_burst: Option<u32>,
    /// Change the quota's rate AFTER seconds from the start, e.g. `20:6`; repeatable
    #[arg(long, value_name = "AFTER:RATE")]
    #[serde(default)]
    pub throttle_change: Vec<String>,
    /// Retry-After seconds sent with throttling 429s [default: 1]
    #[arg(long, value_name = "SECS")]
    pub retry_after: Option<u64>,
    /// Seed for faults, throttling and vetting decisions [default: 0]
    #[arg(long)]
    pub seed: Option<u64>,
    /// CSV of customers' existing state (customer_id,qualification,vetting_status,vetting_reason,vetting_create_date[,company_name,domain]); replaces the built-in sandbox customers
    #[arg(long, value_name = "FILE")]
    pub preload: Option<PathBuf>,
    /// Scripted answers per customer: lines `CUSTOMER_ID 503|429:SECS|drop|delay:MSms|late:MSms|cut|cut:429:SECS|slowbody:MSms|html|big:BYTES`
    #[arg(long, value_name = "FILE")]
    pub script: Option<PathBuf>,
    /// Seconds before a created qualification's vetting leaves InReview [default: 60]
    #[arg(long, value_name = "SECS")]
    pub vetting_secs: Option<u64>,
    /// Fraction of created qualifications whose vetting ends Denied [default: 0]
    #[arg(long, value_name = "FRACTION")]
    pub deny_rate: Option<f64>,
    /// Reject the 2021 request contract, as the service will once 2022 is mandatory
    #[arg(long)]
    #[serde(default)]
    pub require_2022: bool,
    /// Do not keep a log of received requests (for benchmarks)
    #[arg(long)]
    #[serde(default)]
    pub no_record: bool,
    /// Play this cloud's token resource: public, china or usgov [default: public]
    #[arg(long, value_enum, value_name = "CLOUD")]
    pub cloud: Option<crate::partner_center::cloud::Cloud>,
    /// Play a public client app: token requests must carry no client_secret
    #[arg(long)]
    #[serde(default)]
    pub public_client: bool,
    /// Answers to device-code polls before sign-in completes, comma-separated: pending, slow_down, declined, access_denied, expired
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    #[serde(default, deserialize_with = "parsed_list")]
    pub device_polls: Vec<simulator::DevicePoll>,
    /// Polling interval the devicecode endpoint announces, in seconds [default: 5]
    #[arg(long, value_name = "SECS")]
    pub device_interval: Option<u64>,
    /// Shape of create answers and qualification lists: bare, qualifications or pascal-items [default: bare]
    #[arg(long, value_name = "SHAPE")]
    #[serde(default, deserialize_with = "parsed")]
    pub answer_shape: Option<simulator::AnswerShape>,
    /// MFA-required mode: API requests after the first N get 401 with error code 900421
    #[arg(long, value_name = "N")]
    pub mfa_after: Option<u64>,
    /// Token endpoint outage: token requests after the first N get 503
    #[arg(long, value_name = "N")]
    pub token_outage_after: Option<u64>,
    /// Token endpoint throttling: token requests after the first N get 429 with Retry-After (--retry-after)
    #[arg(long, value_name = "N")]
    pub token_throttle_after: Option<u64>,
    /// How many token requests --token-throttle-after throttles [default: all]
    #[arg(long, value_name = "N", requires = "token_throttle_after")]
    pub token_throttle_count: Option<u64>,
    /// `expires_in` figure sent with issued tokens instead of --token-ttl (to test absurd values)
    #[arg(long, value_name = "SECS")]
    pub token_expires_in: Option<u64>,
}

#[cfg(feature = "sandbox")]
impl SimulateArgs {
    /// Fills every setting the flags leave unset from the file's (flags > file > defaults; a
    /// switch set in either is on; a list given as flags replaces the file's).
    pub fn or(self, file: SimulateArgs) -> SimulateArgs {
        macro_rules! merged {
            (options: $($o:ident)*; switches: $($s:ident)*; lists: $($l:ident)*) => {
                SimulateArgs {
                    config: self.config,
                    $($o: self.$o.or(file.$o),)*
                    $($s: self.$s || file.$s,)*
                    $($l: if self.$l.is_empty() { file.$l } else { self.$l },)*
                }
            };
        }
        merged!(
            options: listen latency_ms token_ttl fault_rate throttle_rate throttle_burst
                retry_after seed preload script vetting_secs deny_rate cloud device_interval
                answer_shape mfa_after token_outage_after token_throttle_after
                token_throttle_count token_expires_in;
            switches: require_2022 no_record public_client;
            lists: throttle_change device_polls
        )
    }
}

/// A setting read from its text form, as its flag would read it.
#[cfg(feature = "sandbox")]
fn parsed<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let text = <String as serde::Deserialize>::deserialize(deserializer)?;
    text.parse().map(Some).map_err(serde::de::Error::custom)
}

/// A list setting: a TOML array of strings, or one comma-separated string (as the flag takes).
#[cfg(feature = "sandbox")]
fn parsed_list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let items = match <OneOrMany as serde::Deserialize>::deserialize(deserializer)? {
        OneOrMany::One(text) => text.split(',').map(str::to_string).collect(),
        OneOrMany::Many(items) => items,
    };
    items
        .iter()
        .map(|item| item.trim().parse().map_err(serde::de::Error::custom))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::qualification::listing;

    #[test]
    fn the_columns_help_lists_the_qualifications_of_the_table() {
        // The help is a literal (built by `concat!`), so only this test ties it to the table.
        let line = format!("\n  qualification      {}\n", listing(true));
        assert!(RUN_HELP.contains(&line), "{line:?}");
    }
}
