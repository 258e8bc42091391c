//! Cost of a new id: every run and step draws some (one random draw per id since issue 10; it was
//! one system call per character before).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sealflow::ids::{new_id, random_base62};

fn ids(c: &mut Criterion) {
    c.bench_function("new_id", |b| b.iter(|| new_id(black_box("run"))));
    c.bench_function("random_base62_32", |b| b.iter(|| random_base62(black_box(32))));
}

criterion_group!(benches, ids);
criterion_main!(benches);
