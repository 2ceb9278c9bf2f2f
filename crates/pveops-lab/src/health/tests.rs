//! Exact bytes of the health reads for small states.

use super::*;
use crate::scenario;
use crate::state::{Guest, ReplicationJob, Task};

const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn lab() -> Cluster {
    let mut c = scenario::healthy(2);
    c.started = Some(T0);
    c
}

fn guest_mut(c: &mut Cluster, vmid: u32) -> &mut Guest {
    c.guest_mut(vmid).unwrap()
}

#[test]
fn upid_is_pve_common_encode() {
    let t = TaskRow::from_state(
        "pve1",
        &Task {
            kind: "vzdump".into(),
            id: "100".into(),
            user: "root@pam".into(),
            starttime: 0x6955_B900,
            endtime: None,
            status: None,
            pid: Some(0x1a2b),
            pstart: Some(0xabc),
        },
    );
    assert_eq!(
        t.upid(),
        "UPID:pve1:00001A2B:00000ABC:6955B900:vzdump:100:root@pam:"
    );
}

#[test]
fn node_tasks_filter_and_order_as_tasks_pm() {
    let mut c = lab();
    let n = c.node_mut("pve1").unwrap();
    let task = |kind: &str, id: &str, start: i64, end: i64, status: &str| Task {
        kind: kind.into(),
        id: id.into(),
        user: "root@pam".into(),
        starttime: start,
        endtime: Some(end),
        status: Some(status.into()),
        pid: Some(100),
        pstart: Some(200),
    };
    n.tasks = vec![
        task("vzdump", "", T0 - 9000, T0 - 3600, "job errors"),
        task("qmstart", "100", T0 - 600, T0 - 590, "OK"),
    ];
    guest_mut(&mut c, 101).lock = Some("backup".into());
    guest_mut(&mut c, 101).lock_since = Some(T0 - 120);
    let n = c.node("pve1").unwrap();
    let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let r = node_tasks(&c, n, &q(&[("errors", "1")]), T0);
    assert_eq!(
        r.stdout,
        "[{\"endtime\":1767222000,\"id\":\"\",\"node\":\"pve1\",\"pid\":100,\"pstart\":200,\"starttime\":1767216600,\"status\":\"job errors\",\"type\":\"vzdump\",\"upid\":\"UPID:pve1:00000064:000000C8:695595D8:vzdump::root@pam:\",\"user\":\"root@pam\"}]\n"
    );
    // Archive: the most recently ended first.
    let r = node_tasks(&c, n, &q(&[]), T0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["type"], "qmstart");
    assert_eq!(v[1]["type"], "vzdump");
    // Active: the backup lock's running vzdump, with its `saved` flag.
    let r = node_tasks(&c, n, &q(&[("source", "active")]), T0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["status"], "RUNNING");
    assert_eq!(v[0]["saved"], "0");
    assert_eq!(v[0]["id"], "101");
    assert_eq!(v[0]["starttime"], T0 - 120);
    // since/until on the start time, vmid, typefilter, limit.
    let r = node_tasks(
        &c,
        n,
        &q(&[("source", "all"), ("since", &(T0 - 1000).to_string())]),
        T0,
    );
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    let r = node_tasks(&c, n, &q(&[("vmid", "100")]), T0);
    assert!(r.stdout.contains("qmstart") && !r.stdout.contains("vzdump"));
    let r = node_tasks(&c, n, &q(&[("limit", "1")]), T0);
    assert_eq!(
        serde_json::from_str::<Value>(&r.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // A stale lock has no task.
    guest_mut(&mut c, 101).lock_stale = true;
    let n = c.node("pve1").unwrap();
    assert_eq!(
        node_tasks(&c, n, &q(&[("source", "active")]), T0).stdout,
        "[]\n"
    );
    // Unknown and ill-typed parameters.
    let r = node_tasks(&c, n, &q(&[("bogus", "1")]), T0);
    assert_eq!(r.exit, 255);
    assert_eq!(
        r.stderr,
        "400 Parameter verification failed.\nbogus: property is not defined in schema and the schema does not allow additional properties\npvesh get <api_path> [OPTIONS] [FORMAT_OPTIONS]\n"
    );
    let r = node_tasks(&c, n, &q(&[("source", "x")]), T0);
    assert!(r.stderr.contains(
        "source: value 'x' does not have a value in the enumeration 'archive, active, all'"
    ));
}

#[test]
fn cluster_tasks_lists_running_then_finished() {
    let mut c = lab();
    guest_mut(&mut c, 200).lock = Some("migrate".into());
    guest_mut(&mut c, 200).lock_since = Some(T0 - 60);
    c.node_mut("pve1").unwrap().tasks.push(Task {
        kind: "vzdump".into(),
        id: String::new(),
        user: "root@pam".into(),
        starttime: T0 - 7200,
        endtime: Some(T0 - 3600),
        status: Some("OK".into()),
        pid: Some(10),
        pstart: Some(20),
    });
    let r = cluster_tasks(&c, "pve1", T0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let a = v.as_array().unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(a[0]["type"], "vzdump");
    assert_eq!(a[0]["saved"], "1");
    assert!(a[0].get("pid").is_none());
    assert_eq!(a[1]["type"], "qmigrate");
    assert_eq!(a[1]["node"], "pve2");
    assert!(a[1].get("status").is_none());
}

#[test]
fn pvesr_status_prints_pvesr_pm_columns() {
    let mut c = lab();
    c.node_mut("pve1").unwrap().utc_offset_minutes = 60;
    c.replication = vec![
        ReplicationJob {
            id: "101-0".into(),
            target: "pve2".into(),
            schedule: None,
            enabled: true,
            last_sync: Some(T0 - 3 * 3600),
            last_try: Some(T0 - 600),
            fail_count: 3,
            error: Some("command 'set -o pipefail && pvesm export local-zfs:vm-101-disk-0 zfs - -with-snapshots 1 -snapshot __replicate_101-0_1767224400__' failed: exit code 255".into()),
            duration: Some(3.412345),
        },
        ReplicationJob {
            id: "100-0".into(),
            target: "pve2".into(),
            schedule: None,
            enabled: true,
            last_sync: Some(T0 - 300),
            last_try: None,
            fail_count: 0,
            error: None,
            duration: Some(2.5),
        },
        ReplicationJob {
            id: "200-0".into(),
            target: "pve1".into(),
            schedule: None,
            enabled: true,
            last_sync: None,
            last_try: None,
            fail_count: 0,
            error: None,
            duration: None,
        },
    ];
    let r = pvesr_status(&c, "pve1", &[], T0);
    assert_eq!(
        r.stdout,
        "JobID      Enabled    Target                           LastSync             NextSync   Duration  FailCount State\n\
         100-0      Yes        local/pve2            2026-01-01_00:55:00              pending        2.5          0 OK\n\
         101-0      Yes        local/pve2            2025-12-31_22:00:00  2026-01-01_01:05:00   3.412345          3 command 'set -o pipefail && pvesm export local-zfs:vm-101-disk-0 zfs - -with-snapshots 1 -snapshot __replicate_101-0_1767224400__' failed: exit code 255\n"
    );
    // Never synced: `-`, and the next sync is pending.
    let r = pvesr_status(&c, "pve2", &[], T0);
    assert_eq!(
        r.stdout.lines().nth(1).unwrap(),
        "200-0      Yes        local/pve1                              -              pending          -          0 OK"
    );
    let r = pvesr_status(&c, "pve1", &["--guest", "100"], T0);
    assert_eq!(r.stdout.lines().count(), 2);
}

#[test]
fn pvesubscription_get_sorts_keys() {
    let c = lab();
    let n = c.node("pve1").unwrap();
    let sid = server_id(n);
    assert_eq!(
        pvesubscription_get(n).stdout,
        format!(
            "message: There is no subscription key\nserverid: {sid}\nstatus: notfound\nurl: https://www.proxmox.com/en/proxmox-virtual-environment/pricing\n"
        )
    );
    let mut c = c;
    let n = c.node_mut("pve1").unwrap();
    n.subscription = "c".into();
    n.subscription_info.key = Some("pve2c-0123456789".into());
    n.subscription_info.nextduedate = Some("2026-06-30".into());
    n.subscription_info.checktime = Some(T0);
    let n = c.node("pve1").unwrap();
    assert_eq!(
        pvesubscription_get(n).stdout,
        format!(
            "checktime: 1767225600\nkey: pve2c-0123456789\nlevel: c\nnextduedate: 2026-06-30\nproductname: Proxmox VE Community Subscription 1 CPU/year\nserverid: {sid}\nsockets: 1\nstatus: active\nurl: https://www.proxmox.com/en/proxmox-virtual-environment/pricing\n"
        )
    );
}

#[test]
fn disks_list_reproduces_get_disks() {
    let mut c = lab();
    let n = c.node("pve1").unwrap();
    assert_eq!(
        disks_list(n).stdout,
        "[{\"by_id_link\":\"/dev/disk/by-id/nvme-SAMSUNG_MZVL21T0HCLR-00B00_S676NF0R512345\",\"devpath\":\"/dev/nvme0n1\",\"gpt\":1,\"health\":\"PASSED\",\"model\":\"SAMSUNG MZVL21T0HCLR-00B00\",\"osdid\":-1,\"osdid-list\":null,\"rpm\":0,\"serial\":\"S676NF0R512345\",\"size\":1024209543168,\"type\":\"nvme\",\"used\":\"BIOS boot\",\"vendor\":\"unknown\",\"wearout\":98,\"wwn\":\"eui.002538b511b0a0b1\"},\
{\"by_id_link\":\"/dev/disk/by-id/ata-Samsung_SSD_870_EVO_1TB_S6PTNM0T612345A\",\"devpath\":\"/dev/sda\",\"gpt\":1,\"health\":\"PASSED\",\"model\":\"Samsung_SSD_870_EVO_1TB\",\"osdid\":-1,\"osdid-list\":null,\"rpm\":0,\"serial\":\"S6PTNM0T612345A\",\"size\":1000204886016,\"type\":\"ssd\",\"used\":\"LVM\",\"vendor\":\"ATA     \",\"wearout\":99,\"wwn\":\"0x5002538f4321abcd\"}]\n"
    );
    let mut disks = default_disks();
    disks[0].health = Some("FAILED!".into());
    disks[0].wearout = Some(3);
    disks[1].kind = "hdd".into();
    disks[1].rpm = Some(7200);
    c.node_mut("pve1").unwrap().disks = Some(disks);
    let v: Value = serde_json::from_str(&disks_list(c.node("pve1").unwrap()).stdout).unwrap();
    assert_eq!(v[0]["health"], "FAILED!");
    assert_eq!(v[0]["wearout"], 3);
    assert_eq!(v[1]["wearout"], "N/A");
    assert_eq!(v[1]["rpm"], "7200");
}

#[test]
fn cert_info_lists_ca_and_node_cert() {
    let mut c = lab();
    c.node_mut("pve1").unwrap().certs.ssl_notafter = Some(T0 + 5 * 86400);
    let n = c.node("pve1").unwrap();
    let v: Value = serde_json::from_str(&cert_info(&c, n, T0).stdout).unwrap();
    assert_eq!(v[0]["filename"], "pve-root-ca.pem");
    assert_eq!(v[0]["notafter"], T0 + 10 * 365 * 86400);
    assert_eq!(v[1]["filename"], "pve-ssl.pem");
    assert_eq!(v[1]["notafter"], T0 + 5 * 86400);
    assert_eq!(v[1]["public-key-type"], "rsaEncryption");
    assert_eq!(v.as_array().unwrap().len(), 2);
}

#[test]
fn node_status_has_pve9_fields_and_knobs() {
    let mut c = lab();
    let n = c.node_mut("pve1").unwrap();
    n.memory_used = Some(n.memory_total / 100 * 95);
    n.swap_used = 1 << 30;
    n.cpu_usage = 0.5;
    n.io_wait = 0.25;
    let r = crate::render::pvesh_get(
        &c,
        "pve1",
        "/nodes/pve1/status",
        jiff::Timestamp::from_second(T0).unwrap(),
    );
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let total = v["memory"]["total"].as_u64().unwrap();
    assert_eq!(v["memory"]["used"].as_u64().unwrap(), total / 100 * 95);
    assert_eq!(
        v["memory"]["available"].as_u64().unwrap(),
        total - total / 100 * 95
    );
    assert_eq!(v["swap"]["used"], 1u64 << 30);
    assert_eq!(v["cpu"], 0.5);
    assert_eq!(v["wait"], 0.25);
    assert_eq!(v["loadavg"][0], "24.00");
    assert_eq!(v["idle"], 0);
    assert_eq!(v["boot-info"]["mode"], "efi");
}

fn rrddata(c: &Cluster, path: &str, now: i64) -> crate::render::Reply {
    crate::render::pvesh_get(c, "pve1", path, jiff::Timestamp::from_second(now).unwrap())
}

/// pve1 with round numbers: 16 threads, half busy, a quarter in IO wait.
fn rrd_lab(version: &str) -> Cluster {
    let mut c = lab();
    for n in &mut c.nodes {
        n.manager_version = version.into();
    }
    let n = c.node_mut("pve1").unwrap();
    n.memory_total = 64 << 30;
    n.memory_used = Some(16 << 30);
    n.swap_total = Some(8 << 30);
    n.swap_used = 1 << 30;
    n.cpu_usage = 0.5;
    n.io_wait = 0.25;
    n.cpus = 16;
    n.apt.disk_avail.insert("/".into(), 60 << 30);
    c
}

#[test]
fn rrddata_pve9_hour_has_59_full_rows_the_open_step_dropped() {
    let c = rrd_lab("9.1.1");
    let r = rrddata(&c, "/nodes/pve1/rrddata?timeframe=hour&cf=AVERAGE", T0 + 30);
    assert_eq!((r.exit, r.stderr.as_str()), (0, ""));
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 59);
    assert_eq!(rows[0]["time"], T0 - 59 * 60);
    let row = format!(
        r#"{{"arcsize":0,"cpu":0.5,"iowait":0.25,"loadavg":12,"maxcpu":16,"memavailable":51539607552,"memtotal":68719476736,"memused":17179869184,"netin":0,"netout":0,"pressurecpusome":0,"pressureiofull":0,"pressureiosome":0,"pressurememoryfull":0,"pressurememorysome":0,"roottotal":128849018880,"rootused":57982058496,"swaptotal":8589934592,"swapused":1073741824,"time":{}}}]"#,
        T0 - 60
    );
    assert!(r.stdout.ends_with(&format!(",{row}\n")), "{row}");
    // Longer frames: resolution and count of `$setup` (pve-cluster src/PVE/RRD.pm); the
    // other node's file is read here (no proxying).
    for (tf, reso, count) in [
        ("day", 60, 1440),
        ("week", 1800, 336),
        ("month", 1800, 1440),
        ("year", 21600, 1440),
        ("decade", 604800, 570),
    ] {
        let r = rrddata(
            &c,
            &format!("/nodes/pve2/rrddata?timeframe={tf}&cf=MAX"),
            T0 + 30,
        );
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        let rows = v.as_array().unwrap();
        let ctime = reso * (T0 + 30).div_euclid(reso);
        assert_eq!(rows.len() as i64, count - 1, "{tf}");
        assert_eq!(rows[0]["time"], ctime - (count - 1) * reso, "{tf}");
        assert_eq!(rows.last().unwrap()["time"], ctime - reso, "{tf}");
        assert!(rows.iter().all(|r| r.get("cpu").is_some()), "{tf}");
    }
}

#[test]
fn rrddata_pve8_hour_has_70_rows_the_newest_only_time() {
    let c = rrd_lab("8.4.1");
    let r = rrddata(&c, "/nodes/pve1/rrddata?timeframe=hour", T0 + 30);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 70);
    assert_eq!(rows[0]["time"], T0 - 69 * 60);
    let row = format!(
        r#"{{"cpu":0.5,"iowait":0.25,"loadavg":12,"maxcpu":16,"memtotal":68719476736,"memused":17179869184,"netin":0,"netout":0,"roottotal":128849018880,"rootused":57982058496,"swaptotal":8589934592,"swapused":1073741824,"time":{}}}"#,
        T0 - 60
    );
    assert!(
        r.stdout.ends_with(&format!(",{row},{{\"time\":{T0}}}]\n")),
        "{row}"
    );
    // PVE 8's frames: 70 points each, `decade` is not in its enumeration.
    let r = rrddata(&c, "/nodes/pve1/rrddata?timeframe=year", T0 + 30);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 70);
    assert_eq!(v[69]["time"], 604800 * (T0 / 604800));
    let r = rrddata(&c, "/nodes/pve1/rrddata?timeframe=decade&cf=min", T0);
    assert_eq!(
        (r.exit, r.stderr.as_str()),
        (
            255,
            "400 Parameter verification failed.\ncf: value 'min' does not have a value in the enumeration 'AVERAGE, MAX'\ntimeframe: value 'decade' does not have a value in the enumeration 'hour, day, week, month, year'\npvesh get <api_path> [OPTIONS] [FORMAT_OPTIONS]\n"
        )
    );
}

#[test]
fn rrddata_names_the_file_localhost_and_offline_nodes() {
    let mut c = rrd_lab("9.1.1");
    let r = rrddata(&c, "/nodes/localhost/rrddata?timeframe=hour", T0);
    assert_eq!(
        (r.exit, r.stdout.as_str(), r.stderr.as_str()),
        (
            255,
            "",
            "RRD error: opening '/var/lib/rrdcached/db/pve-node-9.0/localhost': No such file or directory\n"
        )
    );
    let r = rrddata(&c, "/nodes/pve1/rrddata", T0);
    assert!(
        r.stderr
            .contains("timeframe: property is missing and it is not optional")
    );
    // An offline node's file gets no updates: every row is empty; PVE 9 drops the newest.
    c.node_mut("pve2").unwrap().online = false;
    let r = rrddata(&c, "/nodes/pve2/rrddata?timeframe=hour", T0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 59);
    assert!(rows.iter().all(|r| r.as_object().unwrap().len() == 1));
    // A PVE 8 node seen from PVE 9: only the pve2-node columns.
    c.node_mut("pve2").unwrap().online = true;
    c.node_mut("pve2").unwrap().manager_version = "8.4.1".into();
    let r = rrddata(&c, "/nodes/pve2/rrddata?timeframe=hour", T0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0].as_object().unwrap().len(), 13);
    assert!(v[0].get("memavailable").is_none());
}
