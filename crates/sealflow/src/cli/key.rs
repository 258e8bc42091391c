//! `sealflow key add|rotate|status|retire`: the operator's side of master-key rotation (see
//! [`crate::domain::keyring`] for the design). They take the same storage options as `serve`;
//! `add` and `rotate` load keys, `status` and `retire` only read and mark the database. Nothing
//! here prints key material: keys are named by their ids.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use crate::cli::{KeyRetireArgs, KeyRotateArgs, KeyStatusArgs};
use crate::config::StorageArgs;
use crate::domain::keyring::{self, KeyEvent, Rewrapped, Rewrapper};
use crate::startup::{load_next_key, open_store_and_vault};
use crate::store::{self, RetireKey, Store};

fn no_next_key() -> anyhow::Error {
    anyhow::anyhow!(
        "no next master key is configured: set SEALFLOW_MASTER_KEY_NEXT (base64, e.g. from \
         `sealflow key generate`) or SEALFLOW_MASTER_KEY_NEXT_FILE"
    )
}

/// `sealflow key add`: registers the next key's id and check value.
pub async fn add(args: StorageArgs) -> anyhow::Result<()> {
    let storage = args.config()?;
    let next = load_next_key(&storage)?.ok_or_else(no_next_key)?;
    // Opening the vault checks the configured keys against the database first.
    let (store, vault) = open_store_and_vault(&storage).await?;
    let registered = store.master_keys().await?;
    match registered.iter().find(|k| k.id == next.id()) {
        Some(k) if k.retired_at.is_some() => anyhow::bail!(
            "master key {} was retired here and cannot come back; generate a new one with \
             `sealflow key generate`",
            next.id()
        ),
        Some(_) => println!("master key {} is already registered", next.id()),
        None => {
            let check = crate::vault::key_check_value(&next)?;
            store
                .insert_master_key_check(next.id(), &check, crate::ids::now_ms())
                .await?;
            keyring::record_key_event(&store, KeyEvent::Added { id: next.id() }).await?;
            println!(
                "registered master key {} (the current key is {})",
                next.id(),
                vault.current_key_id()
            );
        }
    }
    println!(
        "next: give every instance SEALFLOW_MASTER_KEY_NEXT with this key (keeping SEALFLOW_MASTER_KEY), \
         then run `sealflow key rotate`"
    );
    Ok(())
}

/// `sealflow key rotate`: makes the next key current and rewraps every data key under it.
pub async fn rotate(args: KeyRotateArgs) -> anyhow::Result<()> {
    let storage = args.storage.config()?;
    let rewrap = crate::config::checked(|problems| args.rewrap.resolve(problems))?;
    let next = load_next_key(&storage)?.map(|k| k.id().to_owned());
    let (store, vault) = open_store_and_vault(&storage).await?;
    let from = vault.current_key_id();
    let target = next.unwrap_or_else(|| from.clone());
    if target != from {
        let registered = store.master_keys().await?;
        anyhow::ensure!(
            registered
                .iter()
                .any(|k| k.id == target && k.retired_at.is_none()),
            "master key {target} is not registered here: run `sealflow key add` first"
        );
        anyhow::ensure!(
            store
                .set_current_master_key(&target, crate::ids::now_ms())
                .await?,
            "master key {target} cannot be made current (it was retired meanwhile)"
        );
        vault.follow_current(&target)?;
        keyring::record_key_event(
            &store,
            KeyEvent::Rotated {
                from: &from,
                to: &target,
            },
        )
        .await?;
        println!("master key {target} is now current (was {from}): new secrets are sealed with it");
    } else {
        println!("master key {target} is current");
    }
    let status = keyring::status(&store).await?;
    let pending = status.pending;
    let old: Vec<String> = status
        .keys
        .iter()
        .filter(|k| !k.current && k.retired_at.is_none())
        .map(|k| k.id.clone())
        .collect();
    println!(
        "rewrapping {pending} data keys{} under {target}, {} per commit",
        if status.derivation_root_pending {
            " and the derivation root"
        } else {
            ""
        },
        rewrap.batch
    );
    let started = Instant::now();
    let rewrapper = Rewrapper::new(store.clone(), vault.clone(), rewrap, "cli");
    let outcome = rewrapper
        .run(
            true,
            || false,
            |_, so_far| println!("rewrapped {so_far} of {pending} data keys"),
        )
        .await?;
    let Rewrapped::Done { data_keys } = outcome else {
        anyhow::bail!("the rewrap stopped early ({outcome:?}); run `sealflow key rotate` again");
    };
    let secs = started.elapsed().as_secs_f64();
    println!(
        "done: {data_keys} data keys rewrapped in {secs:.2} s ({:.0} per second); every data key is \
         now wrapped by {target}",
        data_keys as f64 / secs.max(1e-9)
    );
    for id in old {
        println!(
            "once every instance runs with {target} as SEALFLOW_MASTER_KEY, retire the old key: \
             sealflow key retire {id}"
        );
    }
    Ok(())
}

/// `sealflow key status`.
pub async fn status(args: KeyStatusArgs) -> anyhow::Result<()> {
    let storage = args.storage.config()?;
    let store: Arc<dyn Store> = store::open(&storage.database_url).await?;
    let status = keyring::status(&store).await?;
    if args.output == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&status).context("status as JSON")?
        );
        return Ok(());
    }
    match &status.current {
        Some(id) => println!("current master key: {id}"),
        None => println!("current master key: none (no server has started on this database yet)"),
    }
    for k in &status.keys {
        let state = if k.current {
            "current".to_owned()
        } else if let Some(at) = k.retired_at {
            format!("retired {}", crate::ids::rfc3339(at))
        } else {
            "not current".to_owned()
        };
        println!(
            "{}  {state:<30}  {} data keys{}",
            k.id,
            k.data_keys,
            if k.derivation_root {
                " + derivation root"
            } else {
                ""
            }
        );
    }
    println!(
        "not yet under the current key: {} data keys{}",
        status.pending,
        if status.derivation_root_pending {
            " and the derivation root"
        } else {
            ""
        }
    );
    Ok(())
}

/// `sealflow key retire ID`.
pub async fn retire(args: KeyRetireArgs) -> anyhow::Result<()> {
    let storage = args.storage.config()?;
    let store: Arc<dyn Store> = store::open(&storage.database_url).await?;
    let id = args.id.trim();
    match keyring::retire(&store, id).await? {
        RetireKey::Retired => {
            println!("retired master key {id}: an instance holding only this key will not start");
            Ok(())
        }
        RetireKey::AlreadyRetired => {
            println!("master key {id} was already retired");
            Ok(())
        }
        RetireKey::NotFound => {
            anyhow::bail!("no master key {id} is registered here (see `sealflow key status`)")
        }
        RetireKey::Current => anyhow::bail!(
            "master key {id} is still in use: it is the current key, which seals new secrets; \
             rotate to another key first (`sealflow key add`, then `sealflow key rotate`)"
        ),
        RetireKey::InUse {
            data_keys,
            derivation_root,
        } => anyhow::bail!(
            "master key {id} is still in use: it wraps {data_keys} data keys{}; finish the rewrap with \
             `sealflow key rotate` (given both keys), then retire it",
            if derivation_root {
                " and the derivation root"
            } else {
                ""
            }
        ),
    }
}
