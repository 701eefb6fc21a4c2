use crate::common::TestDb;
use crate::common::fixtures::{NOW, user};
use domain::UserId;
use domain::ports::{RepoError, UnitOfWork};
use domain::user::{NewUser, Role, TokenHash, UserName};

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

#[derive(diesel::QueryableByName)]
struct TokenRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    token_hash: String,
}
