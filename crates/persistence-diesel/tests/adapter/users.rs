use crate::common::fixtures::{NOW, user};
use crate::common::{TestDb, scalar};
use domain::UserId;
use domain::ports::{RepoError, UnitOfWork};
use domain::user::{NewUser, Role, TokenHash, TokenSecret, UserName};

#[tokio::test]
async fn insert_creates_the_user_and_an_empty_wallet() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let created = tx
        .users()
        .insert(NewUser {
            name: UserName::new(" lee ").unwrap(),
            role: Role::Seller,
            token_hash: TokenHash("abc".into()),
            created_at: NOW,
        })
        .await
        .unwrap();
    assert_eq!((created.name.as_str(), created.role), ("lee", Role::Seller));
    assert_eq!(created.created_at, NOW);
    tx.commit().await.unwrap();

    let mut read = db.store.read().await.unwrap();
    assert_eq!(
        read.users().get(created.id).await.unwrap(),
        Some(created.clone())
    );
    let wallet = read.wallets().get(created.id).await.unwrap().unwrap();
    assert_eq!((wallet.balance, wallet.updated_at), (0, NOW));
    assert_eq!(
        read.users()
            .find_by_token(&TokenHash("abc".into()))
            .await
            .unwrap(),
        Some(created)
    );
}

#[tokio::test]
async fn unknown_ids_and_tokens_are_none() {
    let db = TestDb::new().await;
    let mut read = db.store.read().await.unwrap();
    assert_eq!(read.users().get(UserId(999)).await.unwrap(), None);
    assert_eq!(
        read.users()
            .find_by_token(&TokenHash("nope".into()))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_token_hash_belongs_to_one_user() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let first = user(tx.as_mut(), Role::Buyer).await;
    tx.commit().await.unwrap();
    let token = {
        let mut raw = db.raw().await;
        use diesel_async::RunQueryDsl;
        diesel::sql_query(format!(
            "SELECT token_hash FROM users WHERE id = {}",
            first.id
        ))
        .get_result::<TokenRow>(&mut raw)
        .await
        .unwrap()
        .token_hash
    };
    let mut tx = db.store.begin().await.unwrap();
    let again = tx
        .users()
        .insert(NewUser {
            name: UserName::new("twin").unwrap(),
            role: Role::Buyer,
            token_hash: TokenHash(token),
            created_at: NOW,
        })
        .await;
    assert!(matches!(again, Err(RepoError::Conflict(_))), "{again:?}");
}

#[tokio::test]
async fn the_token_secret_is_stored_once_and_a_rolled_back_proposal_is_forgotten() {
    let db = TestDb::new().await;
    {
        let mut tx = db.store.begin().await.unwrap();
        let proposed = TokenSecret::new([1; 32]);
        assert_eq!(
            tx.users().token_secret(proposed.clone()).await.unwrap(),
            proposed
        );
        // Dropped: rolled back.
    }
    let mut tx = db.store.begin().await.unwrap();
    let first = tx
        .users()
        .token_secret(TokenSecret::new([2; 32]))
        .await
        .unwrap();
    assert_eq!(first, TokenSecret::new([2; 32]));
    tx.commit().await.unwrap();
    let mut tx = db.store.begin().await.unwrap();
    let again = tx
        .users()
        .token_secret(TokenSecret::new([3; 32]))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(again, first);

    let mut raw = db.raw().await;
    assert_eq!(
        scalar(
            &mut raw,
            "(SELECT count(*) FROM token_secrets WHERE id = 1 AND octet_length(secret) = 32 \
             AND secret = decode(repeat('02', 32), 'hex') AND created_at > now() - interval '1 hour')"
        )
        .await,
        1
    );
    // One row, of 32 bytes, only.
    use diesel_async::SimpleAsyncConnection;
    for refused in [
        "INSERT INTO token_secrets (id, secret) VALUES (2, decode(repeat('02', 32), 'hex'))",
        "UPDATE token_secrets SET secret = decode('02', 'hex')",
    ] {
        assert!(raw.batch_execute(refused).await.is_err(), "{refused}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_starts_agree_on_one_token_secret() {
    let db = TestDb::new().await;
    let starts: Vec<_> = (1..=8_u8)
        .map(|n| {
            let store = db.store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin().await.unwrap();
                let secret = tx.users().token_secret(TokenSecret::new([n; 32])).await;
                // Hold the transaction a moment so that the others' inserts wait for it.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                tx.commit().await.unwrap();
                secret.unwrap()
            })
        })
        .collect();
    let mut agreed = Vec::new();
    for start in starts {
        agreed.push(start.await.unwrap());
    }
    assert!(agreed.iter().all(|s| *s == agreed[0]), "{agreed:?}");
}

#[derive(diesel::QueryableByName)]
struct TokenRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    token_hash: String,
}
