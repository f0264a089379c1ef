//! What goes over the wire and how answers are read: the 2022 and 2021 request contracts, every
//! documented answer shape, a qualification already held, and the 403 on a GCC row.

use std::collections::HashSet;

use crate::common::*;
use pc_qualify::domain::model::{CustomerId, QualificationRecord};
use pc_qualify::simulator::{AnswerShape, FaultAction, PreloadEntry, PreloadState, ScriptedFault};

fn customer(text: &str) -> CustomerId {
    CustomerId::parse(text).expect("test customer id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_2022_sends_the_documented_requests() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("c2022");
    let input = format!(
        "Customer-Tenant-ID,Qualification,Segment,Website,Code\n\
         {},education,k-12,school.example.edu,\n\
         {},GCC,,,482913\n\
         {},StateOwnedEntity,,,\n",
        cid(1).to_uppercase(),
        cid(2),
        cid(3)
    );
    dir.write("in.csv", input);
    let output = pcq_io("run", &dir, &[]).envs(&sim_env(&sim)).run().await;
    output.assert_code(0);
    let mut posts = posts(&sim);
    posts.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(posts.len(), 3);
    let bodies: Vec<serde_json::Value> = posts
        .iter()
        .map(|p| serde_json::from_str(&p.body).expect("json body"))
        .collect();
    assert_eq!(
        posts[0].path,
        format!("/v1/customers/{}/qualifications", cid(1))
    );
    assert_eq!(
        bodies[0],
        serde_json::json!({"qualification":"Education","educationSegment":"K12","website":"school.example.edu"})
    );
    assert_eq!(
        bodies[1],
        serde_json::json!({"qualification":"GovernmentCommunityCloud","validationCode":"482913"})
    );
    assert_eq!(
        bodies[2],
        serde_json::json!({"qualification":"StateOwnedEntity"})
    );
    let mut request_ids = HashSet::new();
    for post in &posts {
        assert_eq!(post.query, None, "no query string under 2022");
        assert_eq!(header(post, "authorization"), Some("Bearer <redacted>"));
        assert!(post.token_fingerprint.is_some(), "a token was sent");
        assert_eq!(header(post, "accept"), Some("application/json"));
        assert_eq!(header(post, "content-type"), Some("application/json"));
        let hosts: Vec<&str> = post
            .headers
            .iter()
            .filter(|(k, _)| k == "host")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(
            hosts,
            [sim.addr.to_string()],
            "one Host header, the authority's"
        );
        assert_eq!(
            header(post, "ms-partnercenter-application"),
            Some(concat!("pc-qualify/", env!("CARGO_PKG_VERSION")))
        );
        let rid = header(post, "ms-requestid").expect("request id");
        let cor = header(post, "ms-correlationid").expect("correlation id");
        assert!(uuid::Uuid::parse_str(rid).is_ok() && uuid::Uuid::parse_str(cor).is_ok());
        request_ids.insert(rid.to_string());
    }
    assert_eq!(request_ids.len(), 3, "one request id per row");
    let rows = results_by_row(&dir.join("out.csv"));
    assert_eq!(rows[0]["customer_id"], cid(1));
    assert_eq!(rows[0]["outcome"], "created");
    assert_eq!(rows[0]["http_status"], "201");
    assert_eq!(rows[0]["vetting_status"], "InReview");
    assert!(!rows[0]["vetting_create_date"].is_empty());
    assert_eq!(rows[1]["qualification"], "GovernmentCommunityCloud");
    assert_eq!(rows[0]["attempts"], "1");
    // The results name the ids that went over the wire.
    for row in &rows {
        assert!(request_ids.contains(&row["request_id"]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_2021_sends_one_key_and_the_code_as_query() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("c2021");
    dir.write(
        "in.csv",
        format!(
            "customer_id,qualification,validation_code\n{},Education,\n{},GovernmentCommunityCloud,482913\n",
            cid(1),
            cid(2)
        ),
    );
    let output = pcq_io("run", &dir, &["--api-contract", "2021"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(0);
    let mut posts = posts(&sim);
    posts.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(posts[0].body, r#"{"Qualification":"Education"}"#);
    assert_eq!(posts[0].query, None);
    assert_eq!(
        posts[1].body,
        r#"{"Qualification":"GovernmentCommunityCloud"}"#
    );
    assert_eq!(posts[1].query.as_deref(), Some("code=482913"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_qualification_is_exists_with_vetting_read_back() {
    let config = SimConfig {
        preload: vec![PreloadEntry {
            customer_id: customer(&cid(1)),
            state: PreloadState::Holds(QualificationRecord {
                qualification: "Education".into(),
                vetting_status: Some("Approved".into()),
                vetting_reason: None,
                vetting_create_date: Some("2024-02-01T10:00:00Z".into()),
            }),
        }],
        ..SimConfig::default()
    };
    let sim = start_sim(config).await;
    let dir = work_dir("exists");
    dir.write(
        "in.csv",
        format!(
            "customer_id,qualification,education_segment\n{},Education,K12\n",
            cid(1)
        ),
    );
    let output = pcq_io("run", &dir, &[]).envs(&sim_env(&sim)).run().await;
    output.assert_code(0);
    let rows = results(&dir.join("out.csv"));
    assert_eq!(rows[0]["outcome"], "exists");
    assert_eq!(rows[0]["http_status"], "409");
    assert_eq!(rows[0]["vetting_status"], "Approved");
    assert_eq!(rows[0]["vetting_create_date"], "2024-02-01T10:00:00Z");
    let gets = sim
        .api_requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .count();
    assert_eq!(gets, 1, "the vetting status is read back once");
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
                customer_id: customer(&cid(2)),
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
            customer_id: customer(&cid(1)),
            state: PreloadState::NoRelationship,
        }],
        script: vec![ScriptedFault {
            customer_id: customer(&cid(2)),
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
