//! `sealflow audit verify` and `sealflow audit prune --before`: the operator's side of the audit
//! trail, on the database that `serve` would use (same `--database-url` / `--data-dir`).

use clap::{Args, Subcommand};

use crate::config::StorageArgs;
use crate::domain::audit::{parse_time, AuditService};
use crate::store;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every chain from its checkpoint to its head; exits non-zero naming the first bad
    /// entry (chain and seq) if a row was edited, deleted or reordered.
    Verify(StorageArgs),
    /// Delete entries older than a time, recording each chain's checkpoint (the last pruned
    /// entry's seq and hash) so that the rest still verifies. Refuses on a chain that does not
    /// verify.
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Delete entries before this time: RFC 3339 (2026-01-31T12:00:00Z) or a date (2026-01-31,
    /// midnight UTC).
    #[arg(long)]
    pub before: String,
}

pub async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify(storage) => verify(&open(storage).await?).await,
        AuditCommand::Prune(args) => {
            let before = parse_time(&args.before).ok_or_else(|| {
                anyhow::anyhow!(
                    "--before must be an RFC 3339 time (2026-01-31T12:00:00Z) or a date (2026-01-31)"
                )
            })?;
            let audit = open(args.storage).await?;
            // Pruning a tampered chain would destroy the evidence; verify first.
            verify(&audit).await?;
            let pruned = audit.prune(before).await?;
            if pruned.is_empty() {
                println!("nothing to prune before {}", args.before);
            }
            for (chain, n) in pruned {
                println!("chain {chain}: pruned {n} entries");
            }
            Ok(())
        }
    }
}

async fn open(storage: StorageArgs) -> anyhow::Result<AuditService> {
    let storage = storage.config()?;
    Ok(AuditService::new(store::open(&storage.database_url).await?))
}

async fn verify(audit: &AuditService) -> anyhow::Result<()> {
    match audit.verify().await? {
        Ok(chains) => {
            let entries: i64 = chains.iter().map(|c| c.entries).sum();
            for c in &chains {
                println!(
                    "chain {}: ok, seq {}..{} ({} entries), head {}",
                    c.chain,
                    c.from_seq + 1,
                    c.head_seq,
                    c.entries,
                    c.head_hash
                );
            }
            println!("audit trail verified: {} chains, {entries} entries", chains.len());
            Ok(())
        }
        Err(bad) => Err(anyhow::anyhow!("{bad}")),
    }
}
