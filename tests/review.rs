//! Findings of an independent review: each test here failed on the code before its fix.

use crate::common::*;
use pc_qualify::model::CustomerId;
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
    let dir = WorkDir::new("other-qualification");
    dir.write("in.csv", soe_rows(3));
    let output = run_io("run", &dir, &sim_env(&sim), &["--rate", "0"]).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let rows = results_by_row(&dir.join("out.csv"));
    assert_eq!(rows.len(), 3, "{rows:?}");
    for row in &rows[..2] {
        assert_eq!(row["outcome"], "failed", "{row:?}");
        assert_eq!(row["error_code"], "unconfirmed", "{row:?}");
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
    let dir = WorkDir::new("mfa-digits");
    dir.write("in.csv", soe_rows(2));
    let output = run_io("run", &dir, &sim_env(&sim), &["--rate", "0"]).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
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
    let dir = WorkDir::new("mfa-error-codes");
    dir.write("in.csv", soe_rows(1));
    let output = run_io("run", &dir, &sim_env(&sim), &["--rate", "0"]).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("multi-factor"), "{stderr}");
    assert!(stderr.contains("pc-qualify login"), "{stderr}");
    // Not renewed and resent: one POST only.
    assert_eq!(posts(&sim).len(), 1);
}
