//! A fresh PostgreSQL database per test on the server `SEALFLOW_TEST_POSTGRES_URL` names (set by
//! `scripts/test`); without it a test fails unless `SEALFLOW_SKIP_POSTGRES=1` says to skip on
//! purpose.

use sqlx::Connection;

/// A fresh database on the test server, dropped at the end.
pub struct PgDb {
    admin_url: String,
    name: String,
    pub url: String,
}

impl PgDb {
    pub async fn create() -> Option<Self> {
        let Ok(admin_url) = std::env::var("SEALFLOW_TEST_POSTGRES_URL") else {
            if std::env::var("SEALFLOW_SKIP_POSTGRES").as_deref() == Ok("1") {
                println!("PostgreSQL tests NOT RUN: SEALFLOW_SKIP_POSTGRES=1");
                return None;
            }
            panic!("PostgreSQL tests NOT RUN: SEALFLOW_TEST_POSTGRES_URL is unset");
        };
        let name = format!("sf_test_{}", sealflow::ids::random_base62(10).to_lowercase());
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connect to PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin_url);
        let url = format!("{base}/{name}");
        Some(Self { admin_url, name, url })
    }

    pub async fn drop_db(self) {
        let mut conn = sqlx::PgConnection::connect(&self.admin_url).await.unwrap();
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .execute(&mut conn)
            .await;
    }
}
