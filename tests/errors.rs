//! The one error line the binary prints: context first, the cause kept (as `#[source]`) and
//! printed once after it, and the documented exit code.

use crate::common::*;

const HEADER: &str = "row,customer_id,qualification,outcome,http_status,vetting_status,vetting_reason,vetting_create_date,attempts,correlation_id,request_id,error_code,error_message,elapsed_ms";

/// The `pc-qualify: error: ` line of a run's standard error.
fn error_line(stderr: &[u8]) -> String {
    text(stderr)
        .lines()
        .find(|l| l.starts_with("pc-qualify: error: "))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_missing_input_names_the_path_then_the_os_error_once() {
    let dir = work_dir("errors-missing");
    let missing = dir.s("missing.csv");
    let output = pcq(&["validate", "--input", &missing]).output();
    output.assert_code(2);
    let line = error_line(&output.stderr);
    let expected_prefix = format!("pc-qualify: error: input {missing}: ");
    assert!(line.starts_with(&expected_prefix), "{line}");
    // The kernel's text (e.g. "No such file or directory (os error 2)") follows, once.
    let cause = &line[expected_prefix.len()..];
    assert!(!cause.is_empty(), "{line}");
    assert_eq!(line.matches(cause).count(), 1, "{line}");
}

#[test]
fn a_damaged_results_row_names_the_line_and_the_field() {
    let dir = work_dir("errors-results");
    let results = dir.write(
        "results.csv",
        format!(
            "{HEADER}\n1,8f1d8a8e-5e4b-4d3c-9b2a-1a2b3c4d5e6f,Education,created,201,Approved,,,many,,,,,12\n"
        ),
    );
    let output = pcq(&[
        "report",
        &results.display().to_string(),
        "--html",
        &dir.s("page.html"),
    ])
    .output();
    output.assert_code(2);
    assert_eq!(
        error_line(&output.stderr),
        format!(
            "pc-qualify: error: input {}: line 2: attempts is not a number: \"many\"",
            results.display()
        )
    );
    assert!(
        !dir.join("page.html").exists(),
        "no page for a damaged file"
    );
}
