//! Sign-up, tokens, profiles.

use super::{Kit, expect_code, invalid_fields};
use application::{Shop, SigningKey, TokenKeys};
use domain::UserId;
use domain::user::{Role, TokenSecret};

pub async fn sign_up_creates_a_buyer_whose_token_authenticates(shop: Shop) {
    let kit = Kit::new(shop).await;
    let signed = kit.shop.sign_up(None, "  kim  ", None, None).await.unwrap();
    assert_eq!(signed.user.role, Role::Buyer);
    assert_eq!(signed.user.name, "kim");
    assert_eq!(signed.user.created_at, kit.now());
    assert!(signed.token.len() >= 43);

    let actor = kit.shop.authenticate(&signed.token).await.unwrap();
    assert_eq!((actor.user_id, actor.role), (signed.user.id, Role::Buyer));
    assert_eq!(kit.shop.me(actor).await.unwrap(), signed.user);
    // A new user has an empty wallet.
    assert_eq!(kit.balance(actor).await, 0);

    let explicit = kit
        .shop
        .sign_up(None, "lee", Some(Role::Buyer), None)
        .await
        .unwrap();
    assert_eq!(explicit.user.role, Role::Buyer);
    assert_ne!(explicit.token, signed.token);
}

pub async fn only_admins_create_sellers_and_admins(shop: Shop) {
    let kit = Kit::new(shop).await;
    expect_code(
        kit.shop.sign_up(None, "s", Some(Role::Seller), None).await,
        "FORBIDDEN",
    );
    expect_code(
        kit.shop.sign_up(None, "a", Some(Role::Admin), None).await,
        "FORBIDDEN",
    );
    let buyer = kit.buyer().await;
    expect_code(
        kit.shop
            .sign_up(Some(buyer), "s", Some(Role::Seller), None)
            .await,
        "FORBIDDEN",
    );
    let seller = kit.seller().await;
    expect_code(
        kit.shop
            .sign_up(Some(seller), "a", Some(Role::Admin), None)
            .await,
        "FORBIDDEN",
    );
    for role in [Role::Seller, Role::Admin, Role::Buyer] {
        let made = kit
            .shop
            .sign_up(Some(kit.admin), "x", Some(role), None)
            .await
            .unwrap();
        assert_eq!(made.user.role, role);
        assert_eq!(kit.shop.authenticate(&made.token).await.unwrap().role, role);
    }
}

pub async fn sign_up_rejects_bad_names(shop: Shop) {
    let kit = Kit::new(shop).await;
    assert_eq!(
        invalid_fields(kit.shop.sign_up(None, "   ", None, None).await),
        ["name"]
    );
    let long = "x".repeat(101);
    assert_eq!(
        invalid_fields(kit.shop.sign_up(None, &long, None, None).await),
        ["name"]
    );
    assert!(
        kit.shop
            .sign_up(None, &"가".repeat(100), None, None)
            .await
            .is_ok()
    );
}

pub async fn unknown_tokens_are_unauthenticated(shop: Shop) {
    let kit = Kit::new(shop).await;
    let signed = kit.shop.sign_up(None, "kim", None, None).await.unwrap();
    for token in [
        "",
        "nope",
        &format!("{}x", signed.token),
        &signed.token[1..],
    ] {
        expect_code(kit.shop.authenticate(token).await, "UNAUTHENTICATED");
    }
}

pub async fn ensure_admin_is_idempotent(shop: Shop) {
    let kit = Kit::new(shop).await;
    let first = kit.shop.ensure_admin("bootstrap-token").await.unwrap();
    let again = kit.shop.ensure_admin("bootstrap-token").await.unwrap();
    assert_eq!(first, again);
    assert_eq!(first.role, Role::Admin);
    assert_eq!(first.name, "admin");
    let actor = kit.shop.authenticate("bootstrap-token").await.unwrap();
    assert_eq!((actor.user_id, actor.role), (first.id, Role::Admin));
    invalid_fields(kit.shop.ensure_admin(" ").await);
}

pub async fn users_see_themselves_and_admins_see_everyone(shop: Shop) {
    let kit = Kit::new(shop).await;
    let a = kit.buyer().await;
    let b = kit.seller().await;
    assert_eq!(kit.shop.get_user(a, a.user_id).await.unwrap().id, a.user_id);
    expect_code(kit.shop.get_user(a, b.user_id).await, "NOT_FOUND");
    expect_code(kit.shop.get_user(b, a.user_id).await, "NOT_FOUND");
    assert_eq!(
        kit.shop.get_user(kit.admin, b.user_id).await.unwrap().role,
        Role::Seller
    );
    expect_code(
        kit.shop.get_user(kit.admin, UserId(999_999)).await,
        "NOT_FOUND",
    );
}

/// The token-signing secret is stored once, whoever proposes first (concurrent first starts
/// included), and every shop on the store uses it: a token from one instance authenticates on
/// another and after a restart.
pub async fn the_token_secret_is_stored_once_and_shared_by_every_shop(shop: Shop) {
    let store = shop.ports().store.clone();
    let starts: Vec<_> = (1..=8_u8)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin().await.unwrap();
                let secret = tx.users().token_secret(TokenSecret::new([n; 32])).await;
                tx.commit().await.unwrap();
                secret.unwrap()
            })
        })
        .collect();
    let mut agreed = Vec::new();
    for start in starts {
        agreed.push(start.await.unwrap());
    }
    let first = agreed[0].clone();
    assert!(agreed.iter().all(|s| *s == first), "{agreed:?}");
    assert!((1..=8_u8).any(|n| first == TokenSecret::new([n; 32])));
    let mut tx = store.begin().await.unwrap();
    let again = tx.users().token_secret(TokenSecret::new([9; 32])).await;
    tx.commit().await.unwrap();
    assert_eq!(again.unwrap(), first);

    // Kit::new builds its own shop over the same store; `shop` is a second instance.
    let kit = Kit::new(shop.clone()).await;
    let signed = kit.shop.sign_up(None, "kim", None, None).await.unwrap();
    let actor = shop.authenticate(&signed.token).await.unwrap();
    assert_eq!((actor.user_id, actor.role), (signed.user.id, Role::Buyer));
    let other = shop.sign_up(None, "lee", None, None).await.unwrap();
    assert_eq!(
        kit.shop.authenticate(&other.token).await.unwrap().user_id,
        other.user.id
    );
    let restarted = Shop::new(shop.ports().clone(), shop.config().clone());
    assert_eq!(
        restarted.authenticate(&signed.token).await.unwrap().user_id,
        signed.user.id
    );
}

/// `TOKEN_SIGNING_KEYS`: with configured keys, what the store holds (its secret) mints
/// nothing; keys rotate without logging anyone out; a retired key's tokens stop working.
pub async fn configured_keys_sign_and_the_stores_secret_mints_nothing(shop: Shop) {
    let key = |id: &str, byte: u8| SigningKey::new(id, vec![byte; 32]).unwrap();
    let with_keys = |configured: Vec<SigningKey>, accept_store_secret: bool| {
        let mut config = shop.config().clone();
        config.token_keys = TokenKeys {
            configured,
            accept_store_secret,
        };
        Shop::new(shop.ports().clone(), config)
    };
    // A token signed by the store's secret, as any holder of a database copy could make one.
    let stored = shop.sign_up(None, "kim", None, None).await.unwrap();
    let k1 = with_keys(vec![key("k1", 1)], false);
    expect_code(k1.authenticate(&stored.token).await, "UNAUTHENTICATED");
    // ... unless the operator keeps the store's secret verifying while users move over.
    let migrating = with_keys(vec![key("k1", 1)], true);
    assert_eq!(
        migrating.authenticate(&stored.token).await.unwrap().user_id,
        stored.user.id
    );

    // New tokens carry the signing key's id and verify wherever that key is configured.
    let signed = k1.sign_up(None, "lee", None, None).await.unwrap();
    assert_eq!(signed.token.split('.').nth(4), Some("k1"));
    assert_eq!(
        k1.authenticate(&signed.token).await.unwrap().user_id,
        signed.user.id
    );
    assert!(migrating.authenticate(&signed.token).await.is_ok());
    expect_code(shop.authenticate(&signed.token).await, "UNAUTHENTICATED");

    // Rotation: k2 signs, k1 still verifies; then k1 is retired.
    let rotating = with_keys(vec![key("k2", 2), key("k1", 1)], false);
    assert!(rotating.authenticate(&signed.token).await.is_ok());
    let fresh = rotating.sign_up(None, "park", None, None).await.unwrap();
    assert_eq!(fresh.token.split('.').nth(4), Some("k2"));
    expect_code(k1.authenticate(&fresh.token).await, "UNAUTHENTICATED");
    let retired = with_keys(vec![key("k2", 2)], false);
    expect_code(retired.authenticate(&signed.token).await, "UNAUTHENTICATED");
    assert_eq!(
        retired.authenticate(&fresh.token).await.unwrap().user_id,
        fresh.user.id
    );
    // Same id, other secret: nothing verifies.
    let impostor = with_keys(vec![key("k2", 7)], false);
    expect_code(impostor.authenticate(&fresh.token).await, "UNAUTHENTICATED");
}

/// A user's signed-up token and its actor.
async fn signed_buyer(kit: &Kit, name: &str) -> (application::Actor, String) {
    let signed = kit.shop.sign_up(None, name, None, None).await.unwrap();
    let actor = kit.shop.authenticate(&signed.token).await.unwrap();
    (actor, signed.token)
}

pub async fn a_rolled_token_replaces_the_old_one_at_once(shop: Shop) {
    let kit = Kit::new(shop).await;
    let (actor, old) = signed_buyer(&kit, "kim").await;
    let rolled = kit.shop.roll_token(actor, None).await.unwrap();
    assert_eq!(rolled.user.id, actor.user_id);
    assert_eq!(rolled.created_at, kit.now());
    assert_ne!(rolled.token, old);
    expect_code(kit.shop.authenticate(&old).await, "UNAUTHENTICATED");
    assert_eq!(kit.shop.authenticate(&rolled.token).await.unwrap(), actor);
    // A shop over the same store that never saw the old version refuses it too.
    let other = Shop::new(kit.shop.ports().clone(), kit.shop.config().clone());
    expect_code(other.authenticate(&old).await, "UNAUTHENTICATED");
    assert_eq!(other.authenticate(&rolled.token).await.unwrap(), actor);
    // Rolling again retires the second token as well.
    let again = kit.shop.roll_token(actor, None).await.unwrap();
    expect_code(
        kit.shop.authenticate(&rolled.token).await,
        "UNAUTHENTICATED",
    );
    assert_eq!(kit.shop.authenticate(&again.token).await.unwrap(), actor);
}

pub async fn an_admin_reissues_a_lost_token_and_nobody_else_may(shop: Shop) {
    let kit = Kit::new(shop).await;
    let (actor, old) = signed_buyer(&kit, "kim").await;
    let (other, other_token) = signed_buyer(&kit, "lee").await;
    let seller = kit.seller().await;
    for caller in [other, seller, actor] {
        expect_code(
            kit.shop.reissue_token(caller, actor.user_id, None).await,
            "FORBIDDEN",
        );
    }
    assert_eq!(kit.shop.authenticate(&old).await.unwrap(), actor);
    expect_code(
        kit.shop
            .reissue_token(kit.admin, UserId(999_999), None)
            .await,
        "NOT_FOUND",
    );
    let issued = kit
        .shop
        .reissue_token(kit.admin, actor.user_id, None)
        .await
        .unwrap();
    assert_eq!(issued.user.id, actor.user_id);
    expect_code(kit.shop.authenticate(&old).await, "UNAUTHENTICATED");
    assert_eq!(kit.shop.authenticate(&issued.token).await.unwrap(), actor);
    // Nobody else's token changed.
    assert_eq!(kit.shop.authenticate(&other_token).await.unwrap(), other);
}

pub async fn a_changed_admin_token_replaces_the_bootstrap_admins(shop: Shop) {
    let first_token = format!("first-{}", uuid::Uuid::new_v4());
    let first = shop.ensure_admin(&first_token).await.unwrap();
    let kit = Kit::new(shop).await; // bootstraps with yet another token: the same admin
    assert_eq!(kit.admin.user_id, first.id);
    let (_, before) = signed_buyer(&kit, "before").await;
    let before_id = kit.shop.authenticate(&before).await.unwrap().user_id;

    // An instance still running with the old ADMIN_TOKEN (nothing cached yet).
    let stale = Shop::new(kit.shop.ports().clone(), kit.shop.config().clone());
    stale.ensure_admin(&first_token).await.unwrap();

    // A restart with a new ADMIN_TOKEN.
    let restarted = Shop::new(kit.shop.ports().clone(), kit.shop.config().clone());
    let second = restarted.ensure_admin("second-admin-token").await.unwrap();
    assert_eq!(second.id, first.id);
    assert_eq!(second.role, Role::Admin);
    assert_eq!(
        restarted
            .authenticate("second-admin-token")
            .await
            .unwrap()
            .user_id,
        first.id
    );
    expect_code(
        restarted.authenticate(&first_token).await,
        "UNAUTHENTICATED",
    );
    // The old instance looks its configured token up and no longer finds it.
    expect_code(stale.authenticate(&first_token).await, "UNAUTHENTICATED");
    // Starting again with the new token changes nothing.
    let again = Shop::new(kit.shop.ports().clone(), kit.shop.config().clone());
    assert_eq!(
        again.ensure_admin("second-admin-token").await.unwrap().id,
        first.id
    );
    // Still one admin: no user was created by the replacements.
    let (_, after) = signed_buyer(&kit, "after").await;
    let after_id = kit.shop.authenticate(&after).await.unwrap().user_id;
    assert_eq!(after_id, UserId(before_id.0 + 1));
}

pub async fn concurrent_rolls_leave_exactly_one_working_token(shop: Shop) {
    let kit = Kit::new(shop).await;
    let (actor, old) = signed_buyer(&kit, "kim").await;
    let rolls: Vec<_> = (0..8)
        .map(|_| {
            let shop = kit.shop.clone();
            tokio::spawn(async move { shop.roll_token(actor, None).await })
        })
        .collect();
    let mut tokens = vec![old];
    for roll in rolls {
        tokens.push(roll.await.unwrap().unwrap().token);
    }
    // Judged here (where every roll updated the cache) and by a shop with no cache at all.
    let fresh = Shop::new(kit.shop.ports().clone(), kit.shop.config().clone());
    for shop in [&kit.shop, &fresh] {
        let mut working = 0;
        for token in &tokens {
            if shop.authenticate(token).await.is_ok() {
                working += 1;
            }
        }
        assert_eq!(working, 1, "tokens that still authenticate");
    }
}
