//! Terraform's resource life cycle, once for every resource: each resource
//! says what it does with Weir ([`Lifecycle`]); [`Managed`] turns that into
//! the plugin protocol's plan, apply, read and import calls.

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tf_provider::schema::Schema;
use tf_provider::value::ValueEmpty;
use tf_provider::{AttributePath, Diagnostics, Resource};

use crate::common::{Conn, Shared};

#[async_trait]
pub trait Lifecycle: Send + Sync + 'static {
    type State: Serialize + DeserializeOwned + Send + Sync + Clone + PartialEq + 'static;

    fn schema(&self) -> Schema;

    /// Checks a configuration (values may be unknown).
    fn validate(&self, _diags: &mut Diagnostics, _config: &Self::State) {}

    /// Fills the computed attributes of a resource about to be made:
    /// defaults the provider knows, unknown for what Weir will choose.
    fn plan_create(&self, conn: Option<&Conn>, planned: &mut Self::State);

    /// The attributes whose change between `prior` and `planned` replaces
    /// the resource.
    fn replaced_by(&self, prior: &Self::State, planned: &Self::State) -> Vec<&'static str>;

    /// Marks what an in-place change makes unknown until it is applied.
    fn plan_update(&self, _prior: &Self::State, _planned: &mut Self::State) {}

    /// The resource as Weir has it now; `Ok(None)` when it is gone.
    async fn read(
        &self,
        conn: &Conn,
        diags: &mut Diagnostics,
        state: Self::State,
    ) -> Result<Option<Self::State>, ()>;

    async fn create(
        &self,
        conn: &Conn,
        diags: &mut Diagnostics,
        planned: Self::State,
    ) -> Option<Self::State>;

    async fn update(
        &self,
        conn: &Conn,
        diags: &mut Diagnostics,
        prior: Self::State,
        planned: Self::State,
    ) -> Option<Self::State>;

    async fn delete(&self, conn: &Conn, diags: &mut Diagnostics, prior: Self::State) -> Option<()>;

    async fn import(&self, conn: &Conn, diags: &mut Diagnostics, id: &str) -> Option<Self::State>;
}

/// A [`Lifecycle`] served as a Terraform resource.
pub struct Managed<L> {
    pub shared: Shared,
    pub lifecycle: L,
}

impl<L> Managed<L> {
    pub fn new(shared: &Shared, lifecycle: L) -> Box<Self> {
        Box::new(Managed {
            shared: shared.clone(),
            lifecycle,
        })
    }
}

#[async_trait]
impl<L: Lifecycle> Resource for Managed<L> {
    type State<'a> = L::State;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(self.lifecycle.schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::State<'a>) -> Option<()> {
        self.lifecycle.validate(diags, &config);
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        state: Self::State<'a>,
        private_state: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let conn = self.shared.get(diags)?;
        match self.lifecycle.read(&conn, diags, state.clone()).await {
            Ok(Some(s)) => Some((s, private_state)),
            Ok(None) => None,
            // Keep the state as it was: the error is reported.
            Err(()) => Some((state, private_state)),
        }
    }

    async fn plan_create<'a>(
        &self,
        diags: &mut Diagnostics,
        proposed: Self::State<'a>,
        _config: Self::State<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let mut planned = proposed;
        let conn = self.shared.get(&mut Diagnostics::default());
        let _ = diags;
        self.lifecycle.plan_create(conn.as_ref(), &mut planned);
        Some((planned, ValueEmpty::default()))
    }

    async fn plan_update<'a>(
        &self,
        _diags: &mut Diagnostics,
        prior: Self::State<'a>,
        proposed: Self::State<'a>,
        _config: Self::State<'a>,
        prior_private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>, Vec<AttributePath>)> {
        if prior == proposed {
            return Some((proposed, prior_private, vec![]));
        }
        let replace = self.lifecycle.replaced_by(&prior, &proposed);
        if !replace.is_empty() {
            let paths = replace.into_iter().map(AttributePath::new).collect();
            return Some((proposed, prior_private, paths));
        }
        let mut planned = proposed;
        self.lifecycle.plan_update(&prior, &mut planned);
        Some((planned, prior_private, vec![]))
    }

    async fn plan_destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: Self::State<'a>,
        prior_private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<Self::PrivateState<'a>> {
        Some(prior_private)
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned: Self::State<'a>,
        _config: Self::State<'a>,
        planned_private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let conn = self.shared.get(diags)?;
        let s = self.lifecycle.create(&conn, diags, planned).await?;
        Some((s, planned_private))
    }

    async fn update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: Self::State<'a>,
        planned: Self::State<'a>,
        _config: Self::State<'a>,
        planned_private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let conn = self.shared.get(diags)?;
        let s = self.lifecycle.update(&conn, diags, prior, planned).await?;
        Some((s, planned_private))
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: Self::State<'a>,
        _planned_private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<()> {
        let conn = self.shared.get(diags)?;
        self.lifecycle.delete(&conn, diags, prior).await
    }

    async fn import<'a>(
        &self,
        diags: &mut Diagnostics,
        id: String,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let conn = self.shared.get(diags)?;
        let s = self.lifecycle.import(&conn, diags, &id).await?;
        Some((s, ValueEmpty::default()))
    }
}
