//! Roles and what they allow: resource names (CRNs), role bindings, and
//! the one check every endpoint makes ([`Access::require`]).
//!
//! A resource is named like the managed service names it,
//! `crn://weir/organization=o/environment=e/compute-pool=p`, and a binding
//! gives a role on a pattern: a resource name, which covers everything
//! beneath it, whose last value may end in `*` (`.../topic=orders-*`).

use std::fmt;

use weir_catalog::RoleBindingRecord;

use crate::ApiError;

/// The roles a binding can give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything in the organization, identity and access included.
    OrganizationAdmin,
    /// Everything in an environment.
    EnvironmentAdmin,
    /// All statements and compute pools in scope.
    FlinkAdmin,
    /// Runs statements on the pools in scope and manages its own.
    FlinkDeveloper,
    /// Reads the topics (tables) in scope, and their schemas.
    DeveloperRead,
    /// Writes the topics (tables) in scope, and registers their schemas.
    DeveloperWrite,
    /// Creates, alters and drops the topics (tables) in scope.
    DeveloperManage,
    /// Everything on the resources in scope.
    ResourceOwner,
    /// Sees every resource in scope; changes nothing and reads no data.
    ReadOnly,
}

pub const ROLES: [Role; 9] = [
    Role::OrganizationAdmin,
    Role::EnvironmentAdmin,
    Role::FlinkAdmin,
    Role::FlinkDeveloper,
    Role::DeveloperRead,
    Role::DeveloperWrite,
    Role::DeveloperManage,
    Role::ResourceOwner,
    Role::ReadOnly,
];

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::OrganizationAdmin => "OrganizationAdmin",
            Role::EnvironmentAdmin => "EnvironmentAdmin",
            Role::FlinkAdmin => "FlinkAdmin",
            Role::FlinkDeveloper => "FlinkDeveloper",
            Role::DeveloperRead => "DeveloperRead",
            Role::DeveloperWrite => "DeveloperWrite",
            Role::DeveloperManage => "DeveloperManage",
            Role::ResourceOwner => "ResourceOwner",
            Role::ReadOnly => "ReadOnly",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        ROLES.into_iter().find(|r| r.as_str() == s)
    }

    /// The role's permissions on a resource of `kind` it covers.
    fn allows(self, p: Permission, kind: Kind) -> bool {
        use Kind::*;
        use Permission::*;
        match self {
            Role::OrganizationAdmin | Role::ResourceOwner => true,
            // Identity and access is the organization's.
            Role::EnvironmentAdmin => !matches!(
                kind,
                Organization | ServiceAccount | ApiKey | RoleBinding | IdentityProvider | Billing
            ),
            Role::FlinkAdmin => match kind {
                Environment | Cluster | Topic | Subject => p == View,
                ComputePool | Statement => matches!(p, View | Manage | Run),
                _ => false,
            },
            Role::FlinkDeveloper => match kind {
                Environment | Cluster | Topic | Subject => p == View,
                ComputePool => matches!(p, View | Run),
                // Its own statements (the caller checks ownership).
                Statement => matches!(p, View | ManageOwn),
                _ => false,
            },
            Role::DeveloperRead => {
                matches!(kind, Topic | Subject | Environment | Cluster) && matches!(p, View | Read)
            }
            Role::DeveloperWrite => {
                matches!(kind, Topic | Environment | Cluster) && matches!(p, View | Write)
                    || kind == Subject && matches!(p, View | Write)
            }
            Role::DeveloperManage => {
                matches!(kind, Topic | Subject) && matches!(p, View | Manage)
                    || matches!(kind, Environment | Cluster) && p == View
            }
            Role::ReadOnly => p == View,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a call does to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// See it (get, list, describe).
    View,
    /// Create, change or delete it.
    Manage,
    /// Change or delete it when the caller owns it (a statement it made).
    ManageOwn,
    /// Run statements on it (a compute pool).
    Run,
    /// Read its data (a topic).
    Read,
    /// Write its data (a topic), or register its schemas (a subject).
    Write,
}

impl Permission {
    const ALL: [Permission; 6] = [
        Permission::View,
        Permission::Manage,
        Permission::ManageOwn,
        Permission::Run,
        Permission::Read,
        Permission::Write,
    ];

    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::View => "view",
            Permission::Manage => "manage",
            Permission::ManageOwn => "manage-own",
            Permission::Run => "run",
            Permission::Read => "read",
            Permission::Write => "write",
        }
    }

    pub fn parse(s: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// As a refusal says it.
    fn verb(self) -> &'static str {
        match self {
            Permission::View => "view",
            Permission::Manage | Permission::ManageOwn => "manage",
            Permission::Run => "run statements on",
            Permission::Read => "read",
            Permission::Write => "write",
        }
    }

    /// The roles that would grant it on a resource of `kind`, for the
    /// message of a refusal.
    fn granted_by(self, kind: Kind) -> Vec<&'static str> {
        ROLES
            .into_iter()
            .filter(|r| {
                r.allows(self, kind)
                    || (self == Permission::ManageOwn && r.allows(Permission::Manage, kind))
            })
            .map(Role::as_str)
            .collect()
    }
}

/// The kind of a resource, from the last segment of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Organization,
    Environment,
    Cluster,
    Topic,
    Subject,
    ComputePool,
    Statement,
    ServiceAccount,
    ApiKey,
    RoleBinding,
    /// An OAuth identity provider, or one of its identity pools.
    IdentityProvider,
    /// Usage and costs: organization admins and read-only viewers.
    Billing,
}

/// A resource's name: `crn://weir/organization=o/...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crn(String);

const CRN_PREFIX: &str = "crn://weir/";

impl Crn {
    pub fn organization(org: &str) -> Crn {
        Crn(format!("{CRN_PREFIX}organization={org}"))
    }
    pub fn environment(org: &str, env: &str) -> Crn {
        Crn(format!("{CRN_PREFIX}organization={org}/environment={env}"))
    }
    /// A child resource; `%`, `/` and `=` in the value are escaped, so a
    /// subject such as `a/b.proto` stays one segment.
    fn child(&self, key: &str, value: &str) -> Crn {
        let value = value
            .replace('%', "%25")
            .replace('/', "%2F")
            .replace('=', "%3D");
        Crn(format!("{}/{key}={value}", self.0))
    }
    pub fn pool(org: &str, env: &str, pool: &str) -> Crn {
        Crn::environment(org, env).child("compute-pool", pool)
    }
    pub fn statement(org: &str, env: &str, name: &str) -> Crn {
        Crn::environment(org, env).child("statement", name)
    }
    pub fn cluster(org: &str, env: &str, cluster: &str) -> Crn {
        Crn::environment(org, env).child("kafka", cluster)
    }
    pub fn topic(org: &str, env: &str, cluster: &str, topic: &str) -> Crn {
        Crn::cluster(org, env, cluster).child("topic", topic)
    }
    pub fn subject(org: &str, env: &str, subject: &str) -> Crn {
        Crn::environment(org, env)
            .child("schema-registry", "sr")
            .child("subject", subject)
    }
    pub fn service_account(org: &str, id: &str) -> Crn {
        Crn::organization(org).child("service-account", id)
    }
    pub fn api_key(org: &str, id: &str) -> Crn {
        Crn::organization(org).child("api-key", id)
    }
    pub fn identity_provider(org: &str, id: &str) -> Crn {
        Crn::organization(org).child("identity-provider", id)
    }
    pub fn identity_pool(org: &str, provider: &str, id: &str) -> Crn {
        Crn::identity_provider(org, provider).child("identity-pool", id)
    }
    pub fn role_binding(org: &str, id: &str) -> Crn {
        Crn::organization(org).child("role-binding", id)
    }
    /// An environment's schema registry as a whole (its global settings).
    pub fn registry(org: &str, env: &str) -> Crn {
        Crn::environment(org, env).child("schema-registry", "sr")
    }
    /// The organization's usage and costs.
    pub fn billing(org: &str) -> Crn {
        Crn::organization(org).child("billing", "usage")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn segments(&self) -> Vec<(&str, &str)> {
        segments(&self.0).unwrap_or_default()
    }

    pub fn kind(&self) -> Kind {
        match self.segments().last().map(|s| s.0) {
            Some("environment") => Kind::Environment,
            Some("kafka") => Kind::Cluster,
            Some("topic") => Kind::Topic,
            Some("subject" | "schema-registry") => Kind::Subject,
            Some("compute-pool") => Kind::ComputePool,
            Some("statement") => Kind::Statement,
            Some("service-account") => Kind::ServiceAccount,
            Some("api-key") => Kind::ApiKey,
            Some("role-binding") => Kind::RoleBinding,
            Some("identity-provider" | "identity-pool") => Kind::IdentityProvider,
            Some("billing") => Kind::Billing,
            _ => Kind::Organization,
        }
    }

    /// The organization the name is in.
    pub fn org(&self) -> Option<&str> {
        self.segments()
            .first()
            .filter(|s| s.0 == "organization")
            .map(|s| s.1)
    }

    /// Whether the pattern `self` (a binding's) covers `resource`: the
    /// same segments up to the pattern's end, the last one's value equal
    /// or matching its `*` prefix.
    pub fn covers(&self, resource: &Crn) -> bool {
        let (p, r) = (self.segments(), resource.segments());
        if p.is_empty() || p.len() > r.len() {
            return false;
        }
        let last = p.len() - 1;
        p.iter().zip(&r).enumerate().all(|(i, (a, b))| {
            a.0 == b.0
                && match a.1.strip_suffix('*') {
                    Some(prefix) if i == last => b.1.starts_with(prefix),
                    _ => a.1 == b.1,
                }
        })
    }

    /// The environment a name is in, if any.
    pub fn environment_of(&self) -> Option<&str> {
        self.segments()
            .iter()
            .find(|s| s.0 == "environment")
            .map(|s| s.1)
    }
}

impl fmt::Display for Crn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A binding pattern as given: `None` when it is not a Weir resource name.
pub fn parse_pattern(s: &str) -> Option<Crn> {
    let seg = segments(s)?;
    (!seg.is_empty() && seg[0].0 == "organization" && seg.iter().all(|(_, v)| !v.is_empty()))
        .then(|| Crn(s.to_string()))
}

fn segments(s: &str) -> Option<Vec<(&str, &str)>> {
    let rest = s.strip_prefix(CRN_PREFIX)?;
    rest.split('/')
        .map(|seg| seg.split_once('=').filter(|(k, _)| !k.is_empty()))
        .collect()
}

/// What one caller may do: the bindings of its principal, and the scope
/// of the key it came with.
#[derive(Debug, Clone)]
pub struct Access {
    pub principal: String,
    pub bindings: Vec<(Role, Crn)>,
    /// A key limited to one resource reaches nothing outside it.
    pub scope: Option<Crn>,
}

impl Access {
    pub fn new(principal: &str, bindings: &[RoleBindingRecord], scope: Option<&str>) -> Access {
        Access {
            principal: principal.to_string(),
            bindings: bindings
                .iter()
                .filter_map(|b| Some((Role::parse(&b.role_name)?, parse_pattern(&b.crn_pattern)?)))
                .collect(),
            scope: scope.and_then(parse_pattern),
        }
    }

    fn in_scope(&self, resource: &Crn) -> bool {
        match &self.scope {
            None => true,
            // A key for an environment may still see the organization and
            // the environment list that lead to it.
            Some(s) => {
                s.covers(resource) || (resource.covers(s) && resource.kind() == Kind::Organization)
            }
        }
    }

    /// Whether a binding allows `p` on `resource`.
    pub fn allows(&self, p: Permission, resource: &Crn) -> bool {
        if !self.in_scope(resource) {
            return false;
        }
        let kind = resource.kind();
        self.bindings
            .iter()
            .any(|(role, pattern)| pattern.covers(resource) && role.allows(p, kind))
            // Seeing an environment (or the organization) takes any role
            // inside it: the way to the resources one may use.
            || (p == Permission::View
                && matches!(kind, Kind::Environment | Kind::Organization | Kind::Cluster)
                && self.bindings.iter().any(|(_, pattern)| resource.covers(pattern)))
    }

    /// `Ok` when allowed; otherwise a 403 that names the permission, the
    /// resource and the roles that would allow it.
    pub fn require(&self, p: Permission, resource: &Crn) -> Result<(), ApiError> {
        if self.allows(p, resource) {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "{} may not {} {}: it needs one of the roles {} on it (or on a resource that contains it){}",
            self.principal,
            p.verb(),
            resource,
            p.granted_by(resource.kind()).join(", "),
            match &self.scope {
                Some(s) if !s.covers(resource) => format!("; its API key is limited to {s}"),
                _ => String::new(),
            }
        )))
    }

    /// Whether `p` is allowed on some resource inside `within` (to list a
    /// collection the caller may see part of).
    pub fn allows_within(&self, within: &Crn) -> bool {
        self.allows(Permission::View, within)
            || self
                .bindings
                .iter()
                .any(|(_, pattern)| within.covers(pattern) || pattern.covers(within))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(role: &str, pattern: &str) -> RoleBindingRecord {
        RoleBindingRecord {
            id: "rb".into(),
            principal: "User:u-1".into(),
            role_name: role.into(),
            crn_pattern: pattern.into(),
            created_at: 0,
        }
    }

    #[test]
    fn patterns_cover_what_is_beneath_them_and_prefixes_with_a_star() {
        let p = parse_pattern("crn://weir/organization=o/environment=e/kafka=c/topic=orders-*")
            .unwrap();
        assert!(p.covers(&Crn::topic("o", "e", "c", "orders-eu")));
        assert!(!p.covers(&Crn::topic("o", "e", "c", "payments")));
        assert!(!p.covers(&Crn::topic("o", "e2", "c", "orders-eu")));
        let env = Crn::environment("o", "e");
        assert!(env.covers(&Crn::pool("o", "e", "p")));
        assert!(!env.covers(&Crn::environment("o", "e2")));
        // A value is matched whole: environment=e does not cover e2.
        assert!(!env.covers(&Crn::pool("o", "e2", "p")));
        assert!(parse_pattern("crn://other/organization=o").is_none());
        assert!(parse_pattern("crn://weir/environment=e").is_none());
        assert!(parse_pattern("crn://weir/organization=").is_none());
    }

    #[test]
    fn roles_allow_what_they_name_and_nothing_else() {
        let dev = Access::new(
            "User:u-1",
            &[
                binding("FlinkDeveloper", "crn://weir/organization=o/environment=e"),
                binding(
                    "DeveloperRead",
                    "crn://weir/organization=o/environment=e/kafka=c/topic=in",
                ),
            ],
            None,
        );
        assert!(dev.allows(Permission::Run, &Crn::pool("o", "e", "p")));
        assert!(!dev.allows(Permission::Manage, &Crn::pool("o", "e", "p")));
        assert!(dev.allows(Permission::Read, &Crn::topic("o", "e", "c", "in")));
        assert!(!dev.allows(Permission::Write, &Crn::topic("o", "e", "c", "in")));
        assert!(!dev.allows(Permission::Read, &Crn::topic("o", "e", "c", "other")));
        assert!(!dev.allows(Permission::Run, &Crn::pool("o", "e2", "p")));
        assert!(dev.allows(Permission::View, &Crn::organization("o")));
        assert!(!dev.allows(Permission::View, &Crn::service_account("o", "sa-1")));
        let err = dev
            .require(Permission::Write, &Crn::topic("o", "e", "c", "in"))
            .unwrap_err();
        assert_eq!(err.status.as_u16(), 403);
        assert!(err.detail.contains("DeveloperWrite"), "{}", err.detail);
        assert!(err.detail.contains("topic=in"), "{}", err.detail);
    }

    #[test]
    fn a_scoped_key_reaches_nothing_outside_its_scope() {
        let admin = Access::new(
            "User:u-1",
            &[binding("OrganizationAdmin", "crn://weir/organization=o")],
            Some("crn://weir/organization=o/environment=e"),
        );
        assert!(admin.allows(Permission::Manage, &Crn::pool("o", "e", "p")));
        assert!(!admin.allows(Permission::Manage, &Crn::pool("o", "e2", "p")));
        assert!(!admin.allows(Permission::Manage, &Crn::service_account("o", "sa")));
        assert!(admin.allows(Permission::View, &Crn::organization("o")));
    }
}
