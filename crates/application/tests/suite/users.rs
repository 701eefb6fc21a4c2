//! Sign-up, tokens, profiles.

use super::{Kit, expect_code, invalid_fields};
use application::Shop;
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
