//! A first-come burst through the adapter (fred + the gate script), for a throughput and
//! latency figure: `cargo run --release -p cache-redis --example gate_burst -- [requests]
//! [in-flight] [total]` against `REDIS_URL` (default redis://127.0.0.1:6379). Works under a
//! random key prefix and deletes its keys afterwards.
//!
//! The ceiling, the same script without this adapter (`redis-benchmark` and `redis-cli`):
//! ```sh
//! SHA=$(redis-cli SCRIPT LOAD "$(cat crates/cache-redis/src/lua/gate_acquire.lua)")
//! redis-cli SET 'bench:{coupon:1}:loaded' 1; redis-cli SET 'bench:{coupon:1}:issued' 0
//! redis-benchmark --csv -n 200000 -c 50 -r 1000000 EVALSHA $SHA 3 'bench:{coupon:1}:loaded' \
//!   'bench:{coupon:1}:issued' 'bench:{coupon:1}:users' 100000000 1000 __rand_int__ \
//!   $(( $(date +%s) + 86400 ))
//! redis-cli DEL 'bench:{coupon:1}:loaded' 'bench:{coupon:1}:issued' 'bench:{coupon:1}:users'
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cache_redis::RedisSettings;
use domain::coupon::{Coupon, CouponScope, Discount};
use domain::ports::{CouponGate, GateDecision, IssuedCounts};
use domain::{CouponId, UserId};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::Semaphore;

#[tokio::main]
async fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<i64>().expect("a number"));
    let requests = args.next().unwrap_or(100_000);
    let in_flight = args.next().unwrap_or(256) as usize;
    let total = args.next().unwrap_or(10_000);

    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("bench:{}:", uuid::Uuid::new_v4().simple());
    let redis = cache_redis::connect_with(RedisSettings::new(&url).with_key_prefix(prefix.clone()))
        .await
        .unwrap();
    let gate = Arc::new(redis.coupon_gate());
    let now = OffsetDateTime::now_utc();
    let coupon = Arc::new(Coupon {
        id: CouponId(1),
        seller_id: UserId(1),
        scope: CouponScope::Store,
        name: "burst".into(),
        discount: Discount::Amount(1000),
        min_order_amount: 0,
        total_quantity: total,
        issued_quantity: 0,
        per_user_limit: 1,
        starts_at: now,
        expires_at: now + time::Duration::days(1),
        created_at: now,
    });
    gate.load(&coupon, &IssuedCounts::default()).await.unwrap();

    let permits = Arc::new(Semaphore::new(in_flight));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(requests as usize);
    for user in 0..requests {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let (gate, coupon) = (gate.clone(), coupon.clone());
        tasks.push(tokio::spawn(async move {
            let asked = Instant::now();
            let decision = gate.try_acquire(&coupon, UserId(user)).await;
            drop(permit);
            (asked.elapsed(), decision)
        }));
    }
    let mut latencies: Vec<Duration> = Vec::with_capacity(tasks.len());
    let (mut granted, mut refused, mut errors) = (0, 0, 0);
    for t in tasks {
        let (latency, decision) = t.await.unwrap();
        latencies.push(latency);
        match decision {
            Ok(GateDecision::Granted) => granted += 1,
            Ok(_) => refused += 1,
            Err(_) => errors += 1,
        }
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "{requests} requests, {in_flight} in flight, total {total}: {:.0} req/s; \
         p50 {:?} p99 {:?} max {:?}; granted {granted}, refused {refused}, errors {errors}",
        requests as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        latencies[latencies.len() - 1],
    );
    assert_eq!(
        granted,
        total.min(requests),
        "the gate must grant exactly the total"
    );

    let client =
        fred::prelude::Builder::from_config(fred::prelude::Config::from_url(&url).unwrap())
            .build()
            .unwrap();
    use fred::prelude::*;
    client.init().await.unwrap();
    let _: i64 = client
        .eval(
            "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do \
             n = n + redis.call('DEL', k) end return n",
            Vec::<String>::new(),
            vec![format!("{prefix}*")],
        )
        .await
        .unwrap();
    redis.shutdown().await;
}
