//! What a first run against the real service meets: public clients, the China cloud, every
//! documented answer shape, GCC's GDAP roles, and Education + GCC on one customer.

use crate::common::*;
use pc_qualify::domain::model::{CustomerId, QualificationRecord};
use pc_qualify::engine::config::Cloud;
use pc_qualify::simulator::{AnswerShape, FaultAction, PreloadEntry, PreloadState, ScriptedFault};

fn customer(n: u32) -> CustomerId {
    CustomerId::parse(&cid(n)).expect("test customer id")
}

/// The token requests (v1) the simulator received, decoded.
fn token_forms(sim: &SimHandle) -> Vec<Vec<(String, String)>> {
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

fn has(form: &[(String, String)], name: &str) -> Option<String> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
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
            has(form, "client_secret"),
            None,
            "no client_secret field at all"
        );
        assert_eq!(has(form, "grant_type").as_deref(), Some("refresh_token"));
    }
    let saved = std::fs::read_to_string(&token_file).expect("token file");
    assert_ne!(saved.trim(), simulator::SANDBOX_REFRESH_TOKEN);
    assert!(
        sim.issued_refresh_token(saved.trim()),
        "the rotated token is written back"
    );
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
        has(&forms[0], "resource").as_deref(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_answer_shape_fills_the_vetting_columns() {
    for shape in [
        AnswerShape::Bare,
        AnswerShape::Qualifications,
        AnswerShape::PascalItems,
    ] {
        let sim = start_sim(SimConfig {
            answer_shape: shape,
            preload: vec![PreloadEntry {
                customer_id: customer(2),
                state: PreloadState::Holds(QualificationRecord {
                    qualification: "Education".into(),
                    vetting_status: Some("Approved".into()),
                    vetting_reason: Some("Verified".into()),
                    vetting_create_date: Some("2024-05-06T07:08:09Z".into()),
                }),
            }],
            ..SimConfig::default()
        })
        .await;
        let dir = work_dir("shape");
        dir.write(
            "in.csv",
            format!(
                "customer_id,qualification,education_segment\n{},Education,K12\n{},Education,K12\n",
                cid(1),
                cid(2)
            ),
        );
        // run: row 1 is created (read from the create answer), row 2 answers 409 and is read
        // back from the list.
        let output = pcq_io("run", &dir, &[]).envs(&sim_env(&sim)).run().await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{shape:?}: {}",
            text(&output.stderr)
        );
        let rows = results_by_row(&dir.join("out.csv"));
        let expected_status = if shape == AnswerShape::Qualifications {
            "200"
        } else {
            "201"
        };
        assert_eq!(rows[0]["outcome"], "created", "{shape:?}");
        assert_eq!(rows[0]["http_status"], expected_status, "{shape:?}");
        assert_eq!(rows[0]["vetting_status"], "InReview", "{shape:?}");
        assert!(
            !rows[0]["vetting_create_date"].is_empty(),
            "{shape:?}: {rows:?}"
        );
        assert_eq!(rows[1]["outcome"], "exists", "{shape:?}");
        assert_eq!(rows[1]["vetting_status"], "Approved", "{shape:?}");
        assert_eq!(rows[1]["vetting_reason"], "Verified", "{shape:?}");
        assert_eq!(
            rows[1]["vetting_create_date"], "2024-05-06T07:08:09Z",
            "{shape:?}"
        );
        // reconcile reads the list first for both.
        let output = pcq_io("reconcile", &dir, &["--force"])
            .envs(&sim_env(&sim))
            .run()
            .await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{shape:?}: {}",
            text(&output.stderr)
        );
        let rows = results_by_row(&dir.join("out.csv"));
        assert!(
            rows.iter().all(|r| r["outcome"] == "exists"),
            "{shape:?}: {rows:?}"
        );
        assert_eq!(rows[0]["vetting_status"], "InReview", "{shape:?}");
        assert_eq!(
            rows[1]["vetting_create_date"], "2024-05-06T07:08:09Z",
            "{shape:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_on_a_gcc_row_names_the_gdap_roles() {
    let sim = start_sim(SimConfig {
        preload: vec![PreloadEntry {
            customer_id: customer(1),
            state: PreloadState::NoRelationship,
        }],
        script: vec![ScriptedFault {
            customer_id: customer(2),
            action: FaultAction::Status {
                status: 403,
                retry_after: None,
            },
        }],
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("gcc403");
    dir.write(
        "in.csv",
        format!(
            "customer_id,qualification,validation_code\n{},GovernmentCommunityCloud,482913\n{},GCC,482913\n{},StateOwnedEntity,\n",
            cid(1),
            cid(2),
            cid(1)
        ),
    );
    let output = pcq_io("run", &dir, &[]).envs(&sim_env(&sim)).run().await;
    output.assert_code(1);
    let rows = results_by_row(&dir.join("out.csv"));
    for row in &rows[..2] {
        assert_eq!(row["outcome"], "failed");
        assert_eq!(row["http_status"], "403");
        let message = &row["error_message"];
        for role in [
            "GDAP",
            "Directory Reader",
            "Directory Writer",
            "License Administrator",
            "User Administrator",
        ] {
            assert!(message.contains(role), "{message}");
        }
    }
    assert!(rows[0]["error_message"].starts_with("No relationship between caller and account."));
    // A 403 on another qualification keeps the service's text alone.
    assert_eq!(rows[2]["http_status"], "403");
    assert!(!rows[2]["error_message"].contains("GDAP"), "{:?}", rows[2]);
}

#[test]
fn validate_warns_on_education_and_gcc_for_one_customer_without_failing() {
    let dir = work_dir("pair");
    dir.write(
        "in.csv",
        format!(
            "customer_id,qualification,education_segment,validation_code\n{},Education,K12,\n{},StateOwnedEntity,,\n{},GovernmentCommunityCloud,,482913\n",
            cid(1),
            cid(2),
            cid(1)
        ),
    );
    let output = pcq(&["validate", "-i", &dir.s("in.csv")]).output();
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "a warning is not invalid: {stdout}"
    );
    assert!(
        stdout.contains(&format!("row 3: warning: customer {}", cid(1)))
            && stdout.contains("(row 1)")
            && stdout.contains("cannot be combined"),
        "{stdout}"
    );
    assert!(stdout.contains("3 row(s): 3 valid, 0 invalid"), "{stdout}");
    assert!(stdout.contains("1 warning(s)"), "{stdout}");
    // With an invalid row as well, the exit code is the invalid row's.
    dir.write(
        "bad.csv",
        format!(
            "customer_id,qualification,education_segment,validation_code\n{},Education,K12,\n{},GovernmentCommunityCloud,,482913\nnot-a-guid,StateOwnedEntity,,\n",
            cid(1),
            cid(1)
        ),
    );
    let output = pcq(&["validate", "-i", &dir.s("bad.csv")]).output();
    output.assert_code(1);
}
