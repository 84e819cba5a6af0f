//! Roles, permissions and API-key scopes: who may do what inside a tenant.
//!
//! Every console route names one [`Permission`]; a principal holds a [`Role`]
//! in exactly one tenant per credential, and an API key may narrow that role
//! further with scopes. Both sides of the check live here so that the console
//! and its tests read the same table.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The tenant created on first start; its admins administer the installation.
pub const SYSTEM_TENANT: &str = "default";

/// A role held by a user in a tenant, from least to most powerful.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads models, versions and services.
    Viewer,
    /// Also registers models, pushes versions, creates, changes, scales,
    /// restarts and deletes services, and manages their own API keys.
    Developer,
    /// Also promotes and deletes versions, registers server-side paths and reads the audit log.
    Operator,
    /// Also manages users, roles and every key of the tenant.
    Admin,
}

impl Role {
    /// Every role, least powerful first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Developer, Role::Operator, Role::Admin];

    /// The lower-case name used on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Developer => "developer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether this role grants `permission`.
    pub fn grants(self, permission: Permission) -> bool {
        self >= permission.least_role()
    }
}

/// Something a request may do. Its wire name doubles as an API-key scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Permission {
    /// List and read models, versions and artifacts.
    #[serde(rename = "models:read")]
    ModelsRead,
    /// Create models, update their metadata and push versions.
    #[serde(rename = "models:write")]
    ModelsWrite,
    /// Delete models and versions.
    #[serde(rename = "models:delete")]
    ModelsDelete,
    /// List and read model services and their status.
    #[serde(rename = "services:read")]
    ServicesRead,
    /// Call served models through the gateway (and read one's own usage).
    #[serde(rename = "services:invoke")]
    ServicesInvoke,
    /// Create, change, scale, restart and delete model services: what a
    /// developer deploys is theirs to run (the models it serves are checked
    /// and kept from deletion while it does).
    #[serde(rename = "services:write")]
    ServicesWrite,
    /// Change the stage of a version.
    #[serde(rename = "models:promote")]
    ModelsPromote,
    /// Register a file or directory that already exists on the server: it
    /// exposes server files, so it is kept from developers.
    #[serde(rename = "artifacts:register-path")]
    ArtifactsRegisterPath,
    /// Create, list and revoke one's own API keys.
    #[serde(rename = "keys:write")]
    KeysWrite,
    /// Read the audit log and verify its chain.
    #[serde(rename = "audit:read")]
    AuditRead,
    /// Manage users, their roles and every key of the tenant.
    #[serde(rename = "users:write")]
    UsersWrite,
    /// Read alert rules, firing alerts, silences, incidents and notifications.
    #[serde(rename = "alerts:read")]
    AlertsRead,
    /// Write alert rules and silences, acknowledge and resolve incidents,
    /// and feed alerts from an Alertmanager.
    #[serde(rename = "alerts:write")]
    AlertsWrite,
    /// Read the config center: environments, keys, history, snapshots,
    /// change requests, and watch keys.
    #[serde(rename = "config:read")]
    ConfigRead,
    /// Publish, delete, roll back and promote keys of unprotected
    /// environments, take snapshots, and request changes of protected ones.
    #[serde(rename = "config:write")]
    ConfigWrite,
    /// Write protected environments (prod) directly, add environments, and
    /// approve or reject change requests filed by someone else.
    #[serde(rename = "config:protected")]
    ConfigProtected,
    /// Read the tenant's policies, the default ones, and evaluate a
    /// resource against them (to learn why a deploy was refused).
    #[serde(rename = "policies:read")]
    PoliciesRead,
    /// Add, change and delete the tenant's policies.
    #[serde(rename = "policies:write")]
    PoliciesWrite,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 18] = [
        Permission::ModelsRead,
        Permission::ModelsWrite,
        Permission::ModelsDelete,
        Permission::ModelsPromote,
        Permission::ServicesRead,
        Permission::ServicesInvoke,
        Permission::ServicesWrite,
        Permission::ArtifactsRegisterPath,
        Permission::KeysWrite,
        Permission::AuditRead,
        Permission::UsersWrite,
        Permission::AlertsRead,
        Permission::AlertsWrite,
        Permission::ConfigRead,
        Permission::ConfigWrite,
        Permission::ConfigProtected,
        Permission::PoliciesRead,
        Permission::PoliciesWrite,
    ];

    /// The scope name, as in API keys and the OpenAPI document.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ModelsRead => "models:read",
            Permission::ModelsWrite => "models:write",
            Permission::ModelsDelete => "models:delete",
            Permission::ModelsPromote => "models:promote",
            Permission::ServicesRead => "services:read",
            Permission::ServicesInvoke => "services:invoke",
            Permission::ServicesWrite => "services:write",
            Permission::ArtifactsRegisterPath => "artifacts:register-path",
            Permission::KeysWrite => "keys:write",
            Permission::AuditRead => "audit:read",
            Permission::UsersWrite => "users:write",
            Permission::AlertsRead => "alerts:read",
            Permission::AlertsWrite => "alerts:write",
            Permission::ConfigRead => "config:read",
            Permission::ConfigWrite => "config:write",
            Permission::ConfigProtected => "config:protected",
            Permission::PoliciesRead => "policies:read",
            Permission::PoliciesWrite => "policies:write",
        }
    }

    /// Parses a scope name.
    pub fn parse(s: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The least powerful role that holds this permission.
    pub fn least_role(self) -> Role {
        match self {
            Permission::ModelsRead
            | Permission::ServicesRead
            | Permission::ServicesInvoke
            | Permission::AlertsRead
            | Permission::ConfigRead
            | Permission::PoliciesRead => Role::Viewer,
            Permission::ModelsWrite
            | Permission::ServicesWrite
            | Permission::KeysWrite
            | Permission::AlertsWrite
            | Permission::ConfigWrite => Role::Developer,
            Permission::ModelsDelete
            | Permission::ModelsPromote
            | Permission::ArtifactsRegisterPath
            | Permission::AuditRead
            | Permission::ConfigProtected => Role::Operator,
            Permission::UsersWrite | Permission::PoliciesWrite => Role::Admin,
        }
    }
}

/// What a credential may do: a role in a tenant, optionally narrowed by scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The tenant the credential acts in.
    pub tenant: String,
    /// The user's role there.
    pub role: Role,
    /// `None` for sessions and unscoped keys; otherwise the key's scopes.
    pub scopes: Option<Vec<Permission>>,
}

impl Grant {
    /// Whether this grant allows `permission`.
    pub fn allows(&self, permission: Permission) -> bool {
        self.role.grants(permission)
            && self
                .scopes
                .as_ref()
                .is_none_or(|scopes| scopes.contains(&permission))
    }

    /// Whether the grant administers the whole installation (admin of the system tenant).
    pub fn is_system_admin(&self) -> bool {
        self.tenant == SYSTEM_TENANT && self.allows(Permission::UsersWrite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_cumulative() {
        for p in Permission::ALL {
            let holders: Vec<Role> = Role::ALL.into_iter().filter(|r| r.grants(p)).collect();
            assert_eq!(holders.first(), Some(&p.least_role()));
            assert!(holders.contains(&Role::Admin), "{p:?}");
        }
        assert!(!Role::Viewer.grants(Permission::ModelsWrite));
        assert!(Role::Viewer.grants(Permission::ServicesRead));
        assert!(!Role::Viewer.grants(Permission::ServicesWrite));
        assert!(Role::Developer.grants(Permission::ServicesWrite));
        assert!(!Role::Developer.grants(Permission::ModelsPromote));
        assert!(!Role::Operator.grants(Permission::UsersWrite));
    }

    #[test]
    fn scopes_narrow_but_never_widen() {
        let scoped = Grant {
            tenant: "t".into(),
            role: Role::Developer,
            scopes: Some(vec![Permission::ModelsRead, Permission::AuditRead]),
        };
        assert!(scoped.allows(Permission::ModelsRead));
        assert!(!scoped.allows(Permission::ModelsWrite), "not in scopes");
        assert!(
            !scoped.allows(Permission::AuditRead),
            "role does not hold it"
        );
    }

    #[test]
    fn names_round_trip_and_match_serde() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
            assert_eq!(
                serde_json::to_value(p).ok(),
                Some(serde_json::json!(p.as_str()))
            );
        }
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
    }
}
