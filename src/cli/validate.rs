//! `pc-qualify validate`: offline checks of an input file.

use super::*;

/// `validate`: every problem as `row N: field: reason` on stdout, then a total (left out with
/// `-q`; a JSON event on stderr with `--log-format json`). Offline: only the input settings count,
/// so the network settings of a config file or the environment can never fail it.
pub(super) fn validate(args: ValidateArgs, quiet: bool, json: bool) -> Result<ExitCode, CliError> {
    use std::io::Write as _;
    let file = match args.config.as_deref() {
        Some(path) => Settings::from_file(path)?.input,
        None => InputSettings::default(),
    };
    let config = RunConfig::from_settings(Settings {
        input: args.settings.or(file),
        ..Settings::default()
    })?;
    if config.validation_code_auto {
        return Err(JobError::Config(
            "validate works offline: --validation-code auto needs the service; give the code itself".into(),
        )
        .into());
    }
    let options = InputOptions {
        contract: config.contract,
        default_segment: config.default_segment,
        default_validation_code: config.default_validation_code,
    };
    let input_error = |source| InputFileError::InputRead {
        path: args.input.clone(),
        source,
    };
    let mut source = InputSource::open(&args.input, &args.format)?;
    let mut reader = source.reader(options)?;
    if let Some(format) = source.format() {
        // On stderr: stdout is the list of problems, which scripts read.
        if json {
            tracing::info!(input = %args.input, format = %format, "reading input");
        } else if !quiet {
            eprintln!("pc-qualify: reading {} as {format}", args.input);
        }
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut print =
        |line: &str| writeln!(out, "{line}").map_err(|e| ResultsError::piped_io("-", e));
    let (mut rows, mut invalid, mut duplicates, mut warnings) = (0u64, 0u64, 0u64, 0u64);
    let mut exclusive = crate::domain::exclusive::ExclusiveCheck::default();
    while let Some(record) = reader.next_record() {
        rows += 1;
        let line = match record.map_err(input_error)? {
            Record::Valid(row) => match exclusive.observe(&row) {
                Some(warning) => {
                    warnings += 1;
                    format!("row {}: warning: {warning}", row.index)
                }
                None => continue,
            },
            Record::Rejected(row) if row.outcome == Some(Outcome::Duplicate) => {
                duplicates += 1;
                let message = row.error_message.as_deref().unwrap_or("");
                format!(
                    "row {}: duplicate: {message} (it will not be sent twice)",
                    row.row
                )
            }
            Record::Rejected(row) => {
                invalid += 1;
                let message = row.error_message.as_deref().unwrap_or("invalid");
                format!("row {}: {message}", row.row)
            }
        };
        print(&line)?;
    }
    let valid = rows - invalid - duplicates;
    if json {
        tracing::info!(
            rows,
            valid,
            invalid,
            duplicates,
            warnings,
            "validate finished"
        );
    } else if !quiet {
        print(&format!(
            "{rows} row(s): {valid} valid, {invalid} invalid, {duplicates} duplicate(s)"
        ))?;
        if warnings > 0 {
            // Warnings are advice, not invalid rows: they do not change the exit code.
            print(&format!(
                "{warnings} warning(s); they do not make rows invalid or change the exit code"
            ))?;
        }
    }
    out.flush().map_err(|e| ResultsError::piped_io("-", e))?;
    Ok(if invalid > 0 {
        ExitCode::RowsFailed
    } else {
        ExitCode::Success
    })
}
