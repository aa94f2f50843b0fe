//! Scale-out end to end: two shards of one users file migrated at the same
//! time by two `cutover` processes, each with its own state DB, then one
//! merged `status` over both; a shard count changed mid-migration is refused.

mod common;
mod support;

use common::*;
use cutover::shard::Shard;
use support::mailgen;

fn shard_args<'a>(config: &'a str, users: &'a str, shard: &'a str) -> Vec<&'a str> {
    vec!["migrate", "--config", config, "--users", users, "--shard", shard]
}

#[test]
fn two_shards_run_side_by_side_and_status_merges_them() {
    let lab = Lab::new(6);
    let rows: Vec<(String, String)> = (1..=6).map(user).collect();
    for (i, (email, _)) in rows.iter().enumerate() {
        let msgs = mailgen::generate(100 + i as u64, 30, 2000);
        lab.source.deliver(email, "INBOX", &msgs[..20]);
        lab.source.deliver(email, "Work", &msgs[20..]);
    }
    let in_shard = |k: u32| -> Vec<String> {
        rows.iter()
            .filter(|(e, _)| Shard { index: k, count: 2 }.contains(e))
            .map(|(e, _)| e.clone())
            .collect()
    };
    // The fixture's six addresses land on both shards.
    assert!(!in_shard(0).is_empty() && !in_shard(1).is_empty());

    let config = lab.write_config("[run]\nparallel_users = 2\nconnections_per_user = 2\n");
    let users = lab.write_users(&rows);
    let (c, u) = (config.to_str().unwrap(), users.to_str().unwrap());

    // Two "machines" at once: each shard locks only its own state DB.
    let outs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = ["0/2", "1/2"]
            .into_iter()
            .map(|k| {
                let config = &config;
                s.spawn(move || cutover(&shard_args(c, u, k), config))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for out in &outs {
        assert_eq!(out.status.code(), Some(0), "{}", explain(out));
    }
    let db0 = lab.path("state.shard-0-of-2.db");
    let db1 = lab.path("state.shard-1-of-2.db");
    assert!(db0.is_file() && db1.is_file());
    assert!(!lab.path("state.db").exists(), "no shard used the unsharded DB");

    for (email, _) in &rows {
        assert_copied_exactly(&lab.source.messages(email), &lab.target.messages(email), &[]);
    }

    // One shard's view holds exactly that shard's users.
    let out = cutover(&["status", "--config", c, "--shard", "1/2", "--json"], &config);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let one: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut listed: Vec<String> = one["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    let mut expected = in_shard(1);
    expected.sort();
    assert_eq!(listed, expected);

    // The merged view: every user once, with the DB it comes from.
    let (a, b) = (db0.to_str().unwrap(), db1.to_str().unwrap());
    let out = cutover(
        &["status", "--config", c, "--state", a, "--state", b, "--json"],
        &config,
    );
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let merged: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(merged["totals"]["users"], 6);
    assert_eq!(merged["totals"]["done"], 6);
    assert_eq!(merged["totals"]["copied"], 6 * 30);
    assert_eq!(merged["state_dbs"].as_array().unwrap().len(), 2);
    for (email, _) in &rows {
        let u = user_status(&merged, email);
        assert_eq!(u["state"], "done");
        assert_eq!(u["copied"], 30);
        let db = if in_shard(0).contains(email) { a } else { b };
        assert_eq!(u["state_db"], db, "{email}");
    }
    let out = cutover(&["status", "--config", c, "--state", a, "--state", b], &config);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("TOTAL (6 users)") && table.contains("6 done"), "{table}");

    // A shard DB that is missing is named; the others are still shown.
    let out = cutover(
        &["status", "--config", c, "--state", a, "--state", "nowhere.db", "--json"],
        &config,
    );
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let partial: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(partial["totals"]["users"], in_shard(0).len());
    assert!(partial["warnings"][0].as_str().unwrap().contains("nowhere.db"));

    // Rerunning a shard is a no-op resync; changing N would move users to
    // DBs that never saw them, so it is refused before anything is copied.
    let out = cutover(&shard_args(c, u, "0/2"), &config);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let mut args = shard_args(c, u, "0/3");
    args.extend(["--state", a]);
    let out = cutover(&args, &config);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--shard 0/2") && err.contains("keep the same --shard"),
        "{err}"
    );
    for (email, _) in &rows {
        assert_eq!(lab.target.messages(email).len(), 30, "{email}: nothing copied twice");
    }
}
