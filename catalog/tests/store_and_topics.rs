//! The store against real SQLite, and topic discovery against a real broker
//! (`WEIR_TEST_BOOTSTRAP`, started by `infra/test.sh`).

use weir_catalog::{sync_topics, ClusterRecord, KafkaAdmin, Store, TableDef};

async fn sqlite() -> (Store, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("weir-store-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.join("t.db").display()))
        .await
        .unwrap();
    (store, dir)
}

/// A store on a fresh database of the PostgreSQL server `infra/test.sh`
/// started.
async fn postgres() -> Store {
    let admin = std::env::var("WEIR_TEST_POSTGRES").expect(
        "WEIR_TEST_POSTGRES is not set: run the suite with infra/test.sh, which starts PostgreSQL",
    );
    let db = format!("weir_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&admin)
        .await
        .expect("PostgreSQL reachable");
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let base = admin.rsplit_once('/').unwrap().0;
    Store::connect(&format!("{base}/{db}")).await.unwrap()
}

/// The same store tests run on both backends.
async fn backend(name: &str) -> Store {
    match name {
        "sqlite" => sqlite().await.0,
        _ => postgres().await,
    }
}

async fn tenant(store: &Store, org: &str, env: &str) {
    store.ensure_organization(org, org).await.unwrap();
    store.ensure_environment(org, env, "default").await.unwrap();
    store
        .ensure_cluster(
            org,
            env,
            &ClusterRecord {
                id: "c1".into(),
                name: "cluster_0".into(),
                bootstrap: "127.0.0.1:1".into(),
                sasl: None,
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn one_tenant_cannot_see_another_tenants_tables_or_offsets_sqlite() {
    tenant_isolation("sqlite").await
}

#[tokio::test]
async fn one_tenant_cannot_see_another_tenants_tables_or_offsets_postgres() {
    tenant_isolation("postgres").await
}

async fn tenant_isolation(name: &str) {
    let store = backend(name).await;
    tenant(&store, "org-a", "env").await;
    tenant(&store, "org-b", "env").await;
    store
        .create_table("org-a", "env", "c1", &TableDef::discovered("secret"))
        .await
        .unwrap();
    store
        .save_offsets("org-a", "env", "s", "secret", &[(0, 42)])
        .await
        .unwrap();
    assert_eq!(
        store.list_tables("org-a", "env", "c1").await.unwrap().len(),
        1
    );
    assert!(store
        .list_tables("org-b", "env", "c1")
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .get_table("org-b", "env", "c1", "secret")
        .await
        .unwrap()
        .is_none());
    assert!(!store
        .delete_table("org-b", "env", "c1", "secret")
        .await
        .unwrap());
    assert!(store
        .load_offsets("org-b", "env", "s")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.load_offsets("org-a", "env", "s").await.unwrap(),
        vec![("secret".to_string(), 0, 42)]
    );
}

#[tokio::test]
async fn a_table_name_is_unique_per_database_sqlite() {
    unique_names("sqlite").await
}

#[tokio::test]
async fn a_table_name_is_unique_per_database_postgres() {
    unique_names("postgres").await
}

async fn unique_names(name: &str) {
    let store = backend(name).await;
    tenant(&store, "org-a", "env").await;
    store
        .create_table("org-a", "env", "c1", &TableDef::discovered("t"))
        .await
        .unwrap();
    let err = store
        .create_table("org-a", "env", "c1", &TableDef::discovered("t"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, weir_catalog::CatalogError::AlreadyExists { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn topics_created_outside_weir_appear_and_deleted_ones_disappear() {
    let bootstrap = std::env::var("WEIR_TEST_BOOTSTRAP")
        .expect("WEIR_TEST_BOOTSTRAP: run the tests with infra/test.sh, which starts a broker");
    let (store, _dir) = sqlite().await;
    tenant(&store, "org-a", "env").await;
    let admin = KafkaAdmin::new(&weir_catalog::KafkaConnection::plain(&bootstrap)).unwrap();
    let topic = format!(
        "outside-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    admin.create_topic(&topic, 2, &[]).await.unwrap();
    // A table made in SQL under an internal-looking name keeps its topic.
    let internal = format!("__tmp_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    admin.create_topic(&internal, 1, &[]).await.unwrap();
    let mut def = TableDef::discovered(&internal);
    def.origin = weir_catalog::TableOrigin::Managed;
    store
        .create_table("org-a", "env", "c1", &def)
        .await
        .unwrap();
    // A view has no topic, and discovery leaves it alone.
    store
        .create_table(
            "org-a",
            "env",
            "c1",
            &TableDef::view("a_view", "SELECT 1 AS x", vec![]),
        )
        .await
        .unwrap();
    let report = sync_topics(&store, &admin, "org-a", "env", "c1")
        .await
        .unwrap();
    assert!(report.added.contains(&topic), "{report:?}");
    let t = store
        .get_table("org-a", "env", "c1", &topic)
        .await
        .unwrap()
        .expect("discovered");
    assert_eq!(
        t.columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["key", "val"]
    );
    admin.delete_topic(&topic).await.unwrap();
    let report = sync_topics(&store, &admin, "org-a", "env", "c1")
        .await
        .unwrap();
    assert!(report.removed.contains(&topic), "{report:?}");
    assert!(store
        .get_table("org-a", "env", "c1", &topic)
        .await
        .unwrap()
        .is_none());
    assert!(
        !report.removed.contains(&"a_view".to_string()),
        "{report:?}"
    );
    assert!(store
        .get_table("org-a", "env", "c1", "a_view")
        .await
        .unwrap()
        .is_some());
    assert!(!report.removed.contains(&internal), "{report:?}");
    assert!(store
        .get_table("org-a", "env", "c1", &internal)
        .await
        .unwrap()
        .is_some());
    admin.delete_topic(&internal).await.unwrap();
}

/// The topic sync types a discovered table only while it is still the
/// discovered one: a `CREATE TABLE` of its topic that replaced it between
/// the sync's read and its write is kept (a lost update the test command
/// once hit through the schema registry check).
#[tokio::test]
async fn the_sync_never_overwrites_a_table_created_meanwhile_sqlite() {
    sync_keeps_created("sqlite").await
}

#[tokio::test]
async fn the_sync_never_overwrites_a_table_created_meanwhile_postgres() {
    sync_keeps_created("postgres").await
}

async fn sync_keeps_created(name: &str) {
    let store = backend(name).await;
    tenant(&store, "org-a", "env").await;
    let discovered = TableDef::discovered("t");
    store
        .create_table("org-a", "env", "c1", &discovered)
        .await
        .unwrap();
    // The sync may type it while it is discovered.
    let mut typed = discovered.clone();
    typed.options.insert("typed".into(), "yes".into());
    assert!(store
        .replace_discovered_table("org-a", "env", "c1", &typed)
        .await
        .unwrap());
    // A CREATE TABLE replaces it with a managed definition ...
    let mut created = discovered.clone();
    created.origin = weir_catalog::TableOrigin::Managed;
    created.options.insert("created".into(), "yes".into());
    store
        .replace_table("org-a", "env", "c1", &created)
        .await
        .unwrap();
    // ... which the sync's late write does not overwrite.
    assert!(!store
        .replace_discovered_table("org-a", "env", "c1", &typed)
        .await
        .unwrap());
    let now = store
        .get_table("org-a", "env", "c1", "t")
        .await
        .unwrap()
        .expect("the table is there");
    assert_eq!(now.origin, weir_catalog::TableOrigin::Managed);
    assert_eq!(now.option("created"), Some("yes"));
}
