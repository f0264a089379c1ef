//! GCC validation codes: --validation-code auto reads the partner's codes once, needs an
//! organization when there are several, and stops before posting when too few creates are left.

use crate::common::*;
use pc_qualify::simulator::ValidationEntry;

fn gcc_input(dir: &TempDir, n: u32) {
    let mut input = String::from("customer_id,qualification,validation_code\n");
    for i in 1..=n {
        input.push_str(&format!("{},GCC,\n", cid(i)));
    }
    dir.write("in.csv", input);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_validation_code_uses_the_only_code() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("autocode");
    gcc_input(&dir, 2);
    let output = pcq_io("run", &dir, &["--validation-code", "auto"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(0);
    let posted = posts(&sim);
    assert_eq!(posted.len(), 2, "both rows were posted");
    for post in posted {
        let body: serde_json::Value = serde_json::from_str(&post.body).expect("json");
        assert_eq!(body["validationCode"], "482913");
    }
    let reads = sim
        .api_requests()
        .into_iter()
        .filter(|r| r.path == "/v1/customers/all/validations")
        .count();
    assert_eq!(reads, 1, "the codes are read once");
}

fn two_codes(remaining: Option<u32>) -> SimConfig {
    SimConfig {
        validations: vec![
            ValidationEntry {
                validation_id: "111111".into(),
                organization_name: "County of Example".into(),
                max_creates: Some(10),
                remaining_creates: remaining,
            },
            ValidationEntry {
                validation_id: "222222".into(),
                organization_name: "State Agency".into(),
                max_creates: None,
                remaining_creates: None,
            },
        ],
        ..SimConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_codes_need_an_organization() {
    let sim = start_sim(two_codes(Some(10))).await;
    let dir = work_dir("severalcodes");
    gcc_input(&dir, 2);
    let env = sim_env(&sim);
    let output = pcq_io("run", &dir, &["--validation-code", "auto"])
        .envs(&env)
        .run()
        .await;
    let stderr = text(&output.stderr);
    output.assert_code(2);
    assert!(
        stderr.contains("County of Example") && stderr.contains("State Agency"),
        "{stderr}"
    );
    assert!(posts(&sim).is_empty());
    let output = pcq_io(
        "run",
        &dir,
        &[
            "--validation-code",
            "auto",
            "--validation-org",
            "state agency",
        ],
    )
    .envs(&env)
    .run()
    .await;
    output.assert_code(0);
    let body: serde_json::Value = serde_json::from_str(&posts(&sim)[0].body).expect("json");
    assert_eq!(body["validationCode"], "222222");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_remaining_creates_stop_the_run_before_posting() {
    let sim = start_sim(two_codes(Some(2))).await;
    let dir = work_dir("remaining");
    gcc_input(&dir, 3);
    let output = pcq_io(
        "run",
        &dir,
        &[
            "--validation-code",
            "auto",
            "--validation-org",
            "County of Example",
        ],
    )
    .envs(&sim_env(&sim))
    .run()
    .await;
    let stderr = text(&output.stderr);
    output.assert_code(2);
    assert!(stderr.contains("only 2 create(s) left"), "{stderr}");
    assert!(posts(&sim).is_empty());
    assert!(!dir.join("out.csv").exists());
}
