//! `caxton storage maintenance` on a real server's database, with the
//! server stopped, and the data intact afterwards.

use crate::support::{AgentsDir, Server};
use serde_json::{Value, json};

#[tokio::test]
async fn maintenance_checks_and_compacts_the_store_offline() {
    let agents = AgentsDir::new();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(&agents, data.path(), Some(crate::support::NO_EMBEDDINGS));
    let url = server.url("/api/v1/memory/entities");
    for n in 0..50 {
        let body = json!({"name": format!("e{n}"), "scope": "global", "entity_type": "t",
                          "observations": [format!("observation {n} ").repeat(40)]});
        let response = server.client().post(&url).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 201);
    }
    for n in 0..40 {
        let response = server
            .client()
            .delete(server.url(&format!("/api/v1/memory/entities/e{n}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert!(server.terminate().success());

    let output = crate::support::caxton_command()
        .args(["storage", "maintenance", "--data-dir"])
        .arg(data.path())
        .env_remove("CAXTON_CONFIG")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["integrity"], json!(["ok"]));
    assert!(
        report["freelist_pages_before"].as_i64().unwrap() > 0,
        "{report}"
    );
    assert!(
        report["pages_after"].as_i64().unwrap() < report["pages_before"].as_i64().unwrap(),
        "free pages were given back: {report}"
    );

    let server = Server::start_with(&agents, data.path(), Some(crate::support::NO_EMBEDDINGS));
    let stats = server.get_json("/api/v1/memory/stats").await;
    assert_eq!(stats["entities"], 10);

    // No database there: a clear error, not a new empty file.
    let empty = tempfile::tempdir().unwrap();
    let output = crate::support::caxton_command()
        .args(["storage", "maintenance", "--data-dir"])
        .arg(empty.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no memory database"));
    assert!(!empty.path().join("memory.db").exists());
}
