//! PostgreSQL plans of the hot-path statements on a fresh database and after it has grown.
//!
//! sqlx prepares each statement once per connection, and PostgreSQL moves a prepared statement
//! to its generic plan after five executions; a plan picked while the tables were empty then
//! stays in use as they grow, and autovacuum may not have analyzed them yet (issue 10 saw a
//! fresh database read 21M index tuples in 10 s until the process restarted). So each statement
//! is prepared here with the generic plan forced, on an empty database and again with 100,000
//! runs and no ANALYZE, and no plan may scan a whole table of runs, steps or workflows.
//!
//! Runs on the PostgreSQL named by `SEALFLOW_TEST_POSTGRES_URL` (as the storage suite does), in
//! a database of its own, dropped afterwards.

use sqlx::{Connection, Executor, PgConnection};

use super::runs::{claim_sql, get_run_sql, list_sql, RUN_STEPS_SQL};
use super::workflows::by_token_sql;
use super::SqlStore;
use crate::store::{StoreOptions, WorkspaceRepo};

/// Tables a hot-path statement must reach through an index, however large they grow.
const BIG_TABLES: [&str; 3] = ["runs", "run_steps", "workflows"];

fn server_url() -> Option<String> {
    match std::env::var("SEALFLOW_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("SEALFLOW_SKIP_POSTGRES").as_deref() == Ok("1") => None,
        _ => panic!(
            "PostgreSQL plan test NOT RUN: SEALFLOW_TEST_POSTGRES_URL is unset (set it, or set \
             SEALFLOW_SKIP_POSTGRES=1 to skip on purpose)"
        ),
    }
}

/// `server` with its database name replaced by `database` (a URL without a query string).
fn in_database(server: &str, database: &str) -> String {
    let base = server.split('?').next().unwrap_or(server);
    let cut = base
        .rfind('/')
        .filter(|&i| i > base.find("://").map_or(0, |j| j + 2));
    format!("{}/{database}", &base[..cut.unwrap_or(base.len())])
}

/// Every sequential scan of a big table in the generic plan of each statement.
async fn whole_table_scans(conn: &mut PgConnection, statements: &[(&str, String, String)]) -> Vec<String> {
    conn.execute("SET plan_cache_mode = force_generic_plan")
        .await
        .unwrap();
    let mut found = Vec::new();
    for (name, sql, args) in statements {
        conn.execute(format!("PREPARE {name} AS {sql}").as_str())
            .await
            .unwrap();
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN EXECUTE {name}{args}"))
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        for line in &plan {
            if BIG_TABLES.iter().any(|t| {
                line.contains(&format!("Seq Scan on {t} ")) || line.ends_with(&format!("Seq Scan on {t}"))
            }) {
                found.push(format!("{name}: {}\n{}", line.trim(), plan.join("\n")));
            }
        }
        conn.execute(format!("DEALLOCATE {name}").as_str()).await.unwrap();
    }
    found
}

#[tokio::test]
async fn hot_path_statements_keep_index_plans_on_a_fresh_and_a_grown_database() {
    let Some(server) = server_url() else { return };
    let database = format!("sf_plans_{}", crate::ids::random_base62(12).to_lowercase());
    let mut admin = PgConnection::connect(&server).await.unwrap();
    admin
        .execute(format!("CREATE DATABASE {database}").as_str())
        .await
        .unwrap();
    let url = in_database(&server, &database);
    let outcome = tokio::spawn({
        let url = url.clone();
        async move {
            let store = SqlStore::open_pg(&url, StoreOptions::default()).await.unwrap();
            let ws = store.ensure_workspace("plans").await.unwrap().id;
            let mut conn = PgConnection::connect(&url).await.unwrap();
            let (list, count) = list_sql(false, false);
            let (list_wf, count_wf) = list_sql(true, false);
            let (list_status, count_status) = list_sql(false, true);
            let statements = [
                ("claim", claim_sql(true), "('owner', 2, 1)".to_owned()),
                ("get_run", get_run_sql(), format!("('{ws}', 'run_7')")),
                ("run_steps", RUN_STEPS_SQL.to_owned(), "('run_7')".to_owned()),
                ("list", list, format!("('{ws}', 20, 0)")),
                ("count", count, format!("('{ws}')")),
                ("list_wf", list_wf, format!("('{ws}', 'wf_3', 20, 0)")),
                ("count_wf", count_wf, format!("('{ws}', 'wf_3')")),
                ("list_status", list_status, format!("('{ws}', 'failed', 20, 0)")),
                ("count_status", count_status, format!("('{ws}', 'failed')")),
                ("by_token", by_token_sql(), "('tok_7')".to_owned()),
            ];
            let fresh = whole_table_scans(&mut conn, &statements).await;
            // 100,000 finished runs of ten workflows, each with one step; no ANALYZE, as on a
            // database that grew faster than autovacuum came round.
            conn.execute(
                format!(
                    "INSERT INTO runs (id, workspace_id, workflow_id, workflow_name, workflow_version, \
                                       definition_json, status, trigger_type, input_json, next_step, \
                                       wake_at, created_at, completed_at) \
                     SELECT 'run_' || g, '{ws}', 'wf_' || (g % 10), 'w', 1, '{{}}', \
                            CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'completed' END, 'webhook', '{{}}', \
                            1, g, g, g + 1 \
                     FROM generate_series(1, 100000) AS g"
                )
                .as_str(),
            )
            .await
            .unwrap();
            conn.execute(
                "INSERT INTO run_steps (run_id, idx, step_id, step_type, status, attempts) \
                 SELECT id, 0, 'post', 'webhook', 'completed', 1 FROM runs",
            )
            .await
            .unwrap();
            let grown = whole_table_scans(&mut conn, &statements).await;
            (fresh, grown)
        }
    })
    .await;
    admin
        .execute(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)").as_str())
        .await
        .unwrap();
    let (fresh, grown) = outcome.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    assert!(
        fresh.is_empty(),
        "whole-table scans on the fresh database:\n{}",
        fresh.join("\n\n")
    );
    assert!(
        grown.is_empty(),
        "whole-table scans with 100,000 runs:\n{}",
        grown.join("\n\n")
    );
}
