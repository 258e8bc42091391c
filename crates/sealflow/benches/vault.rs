//! Baseline cost of sealing and opening one 100-byte secret (envelope: DEK + wrapped DEK).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sealflow::vault::{MasterKey, SecretAad, Vault};
use secrecy::SecretString;

fn seal_and_open(c: &mut Criterion) {
    let vault = Vault::new(MasterKey::generate());
    let aad = SecretAad {
        workspace_id: "ws_bench",
        name: "API_TOKEN",
        version: 1,
    };
    let value = SecretString::from("x".repeat(100));
    let sealed = vault.seal(&aad, &value).unwrap();
    c.bench_function("seal_100B", |b| {
        b.iter(|| vault.seal(black_box(&aad), black_box(&value)).unwrap())
    });
    c.bench_function("open_100B", |b| {
        b.iter(|| vault.open(black_box(&aad), black_box(&sealed)).unwrap())
    });
    c.bench_function("seal_then_open_100B", |b| {
        b.iter(|| {
            let sealed = vault.seal(black_box(&aad), black_box(&value)).unwrap();
            vault.open(&aad, &sealed).unwrap()
        })
    });
}

criterion_group!(benches, seal_and_open);
criterion_main!(benches);
