//! Ceilings measured with the dependencies' own benchmark tools in the same run:
//! `pgbench` running the checkout's SQL (B2) and `redis-benchmark` running the first-come
//! gate's Lua script (B1's Redis part).

use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::path::Path;
use std::process::Stdio;
use tokio::process::Command;

#[derive(Debug, Clone, Serialize)]
pub struct Ceiling {
    pub tool: String,
    pub what: String,
    pub connections: usize,
    /// Transactions (pgbench: one place + pay checkout) or calls (redis) per second.
    pub rate_per_s: f64,
    pub latency_avg_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub command: String,
    /// The tool's output (per-statement latencies for pgbench).
    pub output: String,
}

/// Creates the rows the checkout script works on, in their own id ranges: buyers with a large
/// wallet and products with a large stock, so that every transaction can succeed.
const PGBENCH_SETUP: &str = r#"
\set ON_ERROR_STOP on
BEGIN;
INSERT INTO users (name, role, token_hash, created_at)
SELECT 'pgbench-' || :'tag' || '-' || g, 'BUYER', md5(:'tag' || '-u-' || g) || md5(:'tag' || g::text), now()
FROM generate_series(1, :buyers) AS g;
INSERT INTO wallets (user_id, balance, updated_at)
SELECT id, 1000000000, now() FROM users WHERE name LIKE 'pgbench-' || :'tag' || '-%';
INSERT INTO products (seller_id, name, price, stock, status, created_at, updated_at)
SELECT (SELECT min(id) FROM users WHERE name LIKE 'pgbench-' || :'tag' || '-%'),
       'pgbench-' || :'tag' || '-p' || g, 1000 + (g % 90) * 100, 1000000000, 'ON_SALE', now(), now()
FROM generate_series(1, :products) AS g;
COMMIT;
SELECT min(id) AS uid_min, max(id) AS uid_max FROM users WHERE name LIKE 'pgbench-' || :'tag' || '-%';
SELECT min(id) AS pid_min, max(id) AS pid_max FROM products WHERE name LIKE 'pgbench-' || :'tag' || '-p%';
"#;

/// The checkout as the service runs it: authenticate, place a two-item order (read the
/// products, insert the order and its items, take the stock with a ledger row), authenticate,
/// pay (lock the order, debit the wallet with a PAYMENT row, write the payment, mark the order
/// paid, add to the daily roll-up, write the ORDER_PAID outbox event). Two transactions, like
/// the two API calls. The outbox rows are written as already SENT: the service is still running
/// during the ceiling, and READY rows would set its relay publishing pgbench's events on the
/// same 2 cores, lowering the ceiling.
const PGBENCH_CHECKOUT: &str = r#"
\set uid random(:uid_min, :uid_max)
\set p1 random(:pid_min, :pid_mid)
\set p2 random(:pid_mid + 1, :pid_max)
\set q1 random(1, 3)
\set q2 random(1, 3)
\set nq1 -1 * :q1
\set nq2 -1 * :q2
SELECT id, name, role, created_at FROM users WHERE id = :uid;
BEGIN;
SELECT (SELECT price FROM products WHERE id = :p1) AS price1, (SELECT price FROM products WHERE id = :p2) AS price2 \gset
\set total :price1 * :q1 + :price2 * :q2
\set ntotal -1 * :total
INSERT INTO orders (user_id, status, subtotal, discount, total_amount, created_at, expires_at) VALUES (:uid, 'CREATED', :total, 0, :total, now(), now() + interval '15 minutes') RETURNING id AS oid \gset
INSERT INTO order_items (order_id, product_id, seller_id, name, unit_price, quantity, subtotal) SELECT :oid, id, seller_id, name, price, CASE WHEN id = :p1 THEN :q1::bigint ELSE :q2::bigint END, price * CASE WHEN id = :p1 THEN :q1::bigint ELSE :q2::bigint END FROM products WHERE id IN (:p1, :p2);
UPDATE products SET stock = stock - :q1, updated_at = now() WHERE id = :p1 AND stock >= :q1;
INSERT INTO product_stock_ledger (product_id, delta, reason, order_id, created_at) VALUES (:p1, :nq1, 'ORDER', :oid, now());
UPDATE products SET stock = stock - :q2, updated_at = now() WHERE id = :p2 AND stock >= :q2;
INSERT INTO product_stock_ledger (product_id, delta, reason, order_id, created_at) VALUES (:p2, :nq2, 'ORDER', :oid, now());
COMMIT;
SELECT id, name, role, created_at FROM users WHERE id = :uid;
BEGIN;
SELECT id, user_id, status, total_amount FROM orders WHERE id = :oid FOR UPDATE;
SELECT product_id, unit_price, quantity FROM order_items WHERE order_id = :oid;
UPDATE wallets SET balance = balance - :total, updated_at = now() WHERE user_id = :uid AND balance >= :total RETURNING balance AS bal \gset
INSERT INTO wallet_transactions (user_id, kind, amount, balance_after, order_id, created_at) VALUES (:uid, 'PAYMENT', :ntotal, :bal, :oid, now());
INSERT INTO payments (order_id, user_id, amount, status, created_at) VALUES (:oid, :uid, :total, 'SUCCEEDED', now()) RETURNING id AS payid \gset
UPDATE orders SET status = 'PAID', paid_at = now() WHERE id = :oid AND status = 'CREATED';
INSERT INTO product_sales_daily (product_id, day, quantity) VALUES (:p1, current_date, :q1), (:p2, current_date, :q2) ON CONFLICT (product_id, day) DO UPDATE SET quantity = product_sales_daily.quantity + EXCLUDED.quantity;
INSERT INTO outbox_events (event_id, event_type, aggregate_type, aggregate_id, occurred_at, payload, status, next_attempt_at, created_at, sent_at) VALUES (gen_random_uuid()::text, 'ORDER_PAID', 'ORDER', :oid::bigint::text, now(), jsonb_build_object('orderId', :oid::bigint, 'userId', :uid::bigint, 'paymentId', :payid::bigint, 'totalAmount', :total::bigint), 'SENT', now(), now(), now());
COMMIT;
"#;

fn parse_after(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(prefix))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

async fn output_of(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {what}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        let mut text = format!("{stdout}{stderr}");
        if text.len() > 1500 {
            let mut cut = 1500;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str(" …");
        }
        bail!("{what} failed ({}): {text}", out.status);
    }
    Ok(format!("{stdout}{stderr}"))
}

/// Runs the checkout script with pgbench against `database_url` (the service's own database).
pub async fn pgbench_checkout(
    database_url: &str,
    tag: &str,
    connections: usize,
    seconds: usize,
    work_dir: &Path,
) -> Result<Ceiling> {
    std::fs::create_dir_all(work_dir)?;
    let setup = work_dir.join("pgbench-setup.sql");
    let script = work_dir.join("pgbench-checkout.sql");
    std::fs::write(&setup, PGBENCH_SETUP)?;
    std::fs::write(&script, PGBENCH_CHECKOUT)?;
    let buyers = connections * 50;
    let ranges = output_of(
        Command::new("psql")
            .arg(database_url)
            .args(["-X", "-q", "-t", "-A", "-F", " "])
            .args(["-v", &format!("tag={tag}")])
            .args(["-v", &format!("buyers={buyers}")])
            .args(["-v", "products=100"])
            .arg("-f")
            .arg(&setup),
        "psql (pgbench set-up)",
    )
    .await?;
    let numbers: Vec<i64> = ranges
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [uid_min, uid_max, pid_min, pid_max] = numbers[..] else {
        bail!("unexpected pgbench set-up output: {ranges}");
    };
    let pid_mid = (pid_min + pid_max) / 2;
    let jobs = connections.clamp(1, 2);
    let mut cmd = Command::new("pgbench");
    cmd.args(["-n", "-M", "prepared", "-r"])
        .args(["-c", &connections.to_string(), "-j", &jobs.to_string()])
        .args(["-T", &seconds.to_string()])
        .args(["-D", &format!("uid_min={uid_min}")])
        .args(["-D", &format!("uid_max={uid_max}")])
        .args(["-D", &format!("pid_min={pid_min}")])
        .args(["-D", &format!("pid_mid={pid_mid}")])
        .args(["-D", &format!("pid_max={pid_max}")])
        .arg("-f")
        .arg(&script)
        .arg(database_url);
    let command = format!(
        "pgbench -n -M prepared -r -c {connections} -j {jobs} -T {seconds} -f {} <db> (+ -D id ranges)",
        script.display()
    );
    let output = output_of(&mut cmd, "pgbench").await?;
    let tps = parse_after(&output, "tps =")
        .with_context(|| format!("no tps in the pgbench output: {output}"))?;
    Ok(Ceiling {
        tool: "pgbench".into(),
        what: "checkout SQL (place 2 items + pay), 2 transactions".into(),
        connections,
        rate_per_s: tps,
        latency_avg_ms: parse_after(&output, "latency average ="),
        p50_ms: None,
        p99_ms: None,
        command,
        output,
    })
}

/// Where the gate script is run.
#[derive(Debug, Clone)]
pub struct RedisTarget {
    pub host: String,
    pub port: u16,
    pub db: u32,
}

impl RedisTarget {
    fn cli(&self) -> Command {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", &self.host, "-p", &self.port.to_string()])
            .args(["-n", &self.db.to_string()]);
        cmd
    }
}

/// Runs the first-come gate's acquire script (`gate_acquire.lua`) with redis-benchmark:
/// `requests` calls from distinct random users against one loaded coupon of `total` units,
/// `connections` clients, via EVALSHA.
pub async fn redis_gate(
    target: &RedisTarget,
    script_path: &Path,
    total: usize,
    requests: usize,
    connections: usize,
) -> Result<Ceiling> {
    let script = std::fs::read_to_string(script_path)
        .with_context(|| format!("reading the gate script {}", script_path.display()))?;
    let sha = output_of(
        target.cli().args(["SCRIPT", "LOAD", &script]),
        "redis-cli SCRIPT LOAD",
    )
    .await?
    .trim()
    .to_owned();
    let keys = [
        "bench:{coupon:gate}:loaded",
        "bench:{coupon:gate}:issued",
        "bench:{coupon:gate}:users",
    ];
    output_of(target.cli().arg("DEL").args(keys), "redis-cli DEL").await?;
    output_of(target.cli().args(["SET", keys[0], "1"]), "redis-cli SET").await?;
    output_of(target.cli().args(["SET", keys[1], "0"]), "redis-cli SET").await?;
    let expire_at = (time::OffsetDateTime::now_utc().unix_timestamp() + 86_400).to_string();
    let mut cmd = Command::new("redis-benchmark");
    cmd.args(["-h", &target.host, "-p", &target.port.to_string()])
        .args(["--dbnum", &target.db.to_string()])
        .args(["-c", &connections.to_string(), "-n", &requests.to_string()])
        .args(["-r", &(requests * 10).to_string(), "--csv"])
        .args(["EVALSHA", &sha, "3"])
        .args(keys)
        .args([&total.to_string(), "1", "__rand_int__", &expire_at]);
    let command = format!(
        "redis-benchmark -c {connections} -n {requests} -r {} --csv EVALSHA <gate_acquire sha> 3 <loaded> <issued> <users> {total} 1 __rand_int__ <expiry>",
        requests * 10
    );
    let output = output_of(&mut cmd, "redis-benchmark").await?;
    let issued = output_of(target.cli().args(["GET", keys[1]]), "redis-cli GET").await?;
    output_of(target.cli().arg("DEL").args(keys), "redis-cli DEL").await?;
    // --csv: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",
    // "p99_latency_ms","max_latency_ms"
    let row = output
        .lines()
        .rfind(|l| l.starts_with('"') && !l.starts_with("\"test\""))
        .with_context(|| format!("no result row in the redis-benchmark output: {output}"))?;
    let cols: Vec<f64> = row
        .split(',')
        .skip(1)
        .filter_map(|c| c.trim_matches('"').parse().ok())
        .collect();
    let rate = *cols
        .first()
        .with_context(|| format!("no rps in the redis-benchmark row {row}"))?;
    Ok(Ceiling {
        tool: "redis-benchmark".into(),
        what: format!(
            "gate_acquire.lua via EVALSHA, coupon of {total}, distinct random users (issued after the run: {})",
            issued.trim()
        ),
        connections,
        rate_per_s: rate,
        latency_avg_ms: cols.get(1).copied(),
        p50_ms: cols.get(3).copied(),
        p99_ms: cols.get(5).copied(),
        command,
        output,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pgbench_figures() {
        let out = "number of failed transactions: 0 (0.000%)\nlatency average = 21.042 ms\n\
                   initial connection time = 40.1 ms\ntps = 3041.552290 (without initial connection time)\n";
        assert_eq!(parse_after(out, "tps ="), Some(3041.55229));
        assert_eq!(parse_after(out, "latency average ="), Some(21.042));
        assert_eq!(parse_after(out, "p99 ="), None);
    }
}
