//! `--discover`: expand the first reachable target into every member of its cluster. Member
//! addresses come from `/cluster/status`; their host keys are checked against the cluster's own
//! `/etc/pve/priv/known_hosts` (read over the first, verified connection) as well as the local
//! files, so under `strict` a member whose key is in neither is refused.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;

use crate::facts;
use crate::fleet::Fleet;
use crate::inventory::Node;

/// The cluster members as nodes, reached like the seed node (user, port, keys, jump), or the
/// targets unchanged when no target answers or it is not clustered.
pub async fn expand(
    fleet: &Arc<Fleet>,
    targets: Vec<Node>,
    workdir: &std::path::Path,
) -> Result<Vec<Node>, crate::Error> {
    let templates = &fleet.templates;
    let cmds = vec![
        templates.render("cluster-status", &json!({}))?,
        templates.render("cluster-known-hosts", &json!({}))?,
    ];
    for seed in &targets {
        let results = fleet.run(vec![seed.clone()], cmds.clone(), |_| {}).await;
        let Some(Ok(outs)) = results.into_iter().next().map(|r| r.outcome) else {
            continue;
        };
        let status = outs
            .first()
            .and_then(|c| c.result.as_ref().ok())
            .map(|o| o.stdout_text())
            .unwrap_or_default();
        let known = outs
            .get(1)
            .and_then(|c| c.result.as_ref().ok())
            .filter(|o| o.success())
            .map(|o| o.stdout_text());
        let parsed = match facts::pvesh::parse_cluster_status(&status) {
            Ok(p) if p.clustered => p,
            Ok(_) => {
                tracing::warn!(
                    "{}: not part of a cluster; --discover keeps the targets as given",
                    seed.name
                );
                return Ok(targets);
            }
            Err(e) => {
                return Err(crate::Error::Usage(format!(
                    "{}: --discover could not read /cluster/status: {e}",
                    seed.name
                )));
            }
        };
        let extra_known = match known {
            Some(text) => {
                let path = workdir.join("cluster_known_hosts");
                crate::atomic::write(&path, text.as_bytes(), Some(0o600))?;
                Some(path)
            }
            None => None,
        };
        let mut nodes = Vec::new();
        for m in parsed.nodes {
            let Some(ip) = m.ip.clone() else {
                tracing::warn!(
                    "cluster member {} has no address in /cluster/status; skipped",
                    m.name
                );
                continue;
            };
            let mut n = seed.clone();
            n.name = m.name.clone();
            n.host = ip;
            if let Some(p) = &extra_known {
                n.known_hosts.read.push(PathBuf::from(p));
            }
            nodes.push(n);
        }
        tracing::info!("--discover: {} members from {}", nodes.len(), seed.name);
        return Ok(nodes);
    }
    Ok(targets)
}
