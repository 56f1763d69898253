//! Tenancy rules (pure): who the tenant is, which network an instance uses, which tags every
//! cloud resource carries, and which CIDR block a new network gets.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use sha2::{Digest, Sha256};

use crate::api::{Reason, TENANT_LABEL, tags};
use mce_cloud::Tags;

/// Why the tenant cannot be established. `reason()` is the stable condition reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TenancyError {
    #[error(
        "namespace {0:?} has no {TENANT_LABEL} label; a platform admin must assign it to a tenant"
    )]
    NamespaceWithoutTenant(String),
    #[error("spec.tenantId {spec:?} disagrees with the namespace's tenant {namespace:?}")]
    TenantMismatch { spec: String, namespace: String },
    #[error("networkRef {0:?} names a UserNetwork of another user, provider or region")]
    NetworkMismatch(String),
}

impl TenancyError {
    pub fn reason(&self) -> Reason {
        match self {
            Self::NamespaceWithoutTenant(_) => Reason::NamespaceWithoutTenant,
            Self::TenantMismatch { .. } => Reason::TenantMismatch,
            Self::NetworkMismatch(_) => Reason::NetworkMismatch,
        }
    }
}

/// The tenant of an object: the namespace's label decides; a spec value must agree with it.
pub fn resolve_tenant(
    namespace: &str,
    namespace_labels: Option<&BTreeMap<String, String>>,
    spec_tenant: Option<&str>,
) -> Result<String, TenancyError> {
    let tenant = namespace_labels
        .and_then(|l| l.get(TENANT_LABEL))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| TenancyError::NamespaceWithoutTenant(namespace.to_string()))?;
    match spec_tenant {
        Some(s) if s != tenant => Err(TenancyError::TenantMismatch {
            spec: s.to_string(),
            namespace: tenant.clone(),
        }),
        _ => Ok(tenant.clone()),
    }
}

/// Tags identifying a user's network on the cloud: (tenant, user) — provider and region are
/// the account and endpoint the lookup runs against. The tenant is part of the key, so two
/// tenants with the same user id never share a VPC.
pub fn network_key_tags(tenant: &str, user: &str) -> Tags {
    Tags::from([
        (tags::TENANT.to_string(), tenant.to_string()),
        (tags::OWNER.to_string(), user.to_string()),
        (
            tags::CREATED_BY.to_string(),
            tags::CREATED_BY_VALUE.to_string(),
        ),
    ])
}

/// The tag naming the Kubernetes object a resource was created for.
pub fn uid_tag(uid: &str) -> Tags {
    Tags::from([(tags::OBJECT_UID.to_string(), uid.to_string())])
}

/// Every tag a created resource carries: the user's tags, then the injected ones (which win).
pub fn resource_tags(
    user_tags: &BTreeMap<String, String>,
    tenant: &str,
    user: &str,
    uid: &str,
) -> Tags {
    let mut all: Tags = user_tags.clone();
    all.extend(network_key_tags(tenant, user));
    all.extend(uid_tag(uid));
    all
}

/// Name of the UserNetwork silent addressing uses for (user, provider, region) in a namespace
/// (the namespace fixes the tenant). DNS-1123, at most 63 characters, stable.
pub fn silent_network_name(user: &str, provider: &str, region: &str) -> String {
    let readable: String = format!("{user}-{provider}-{region}")
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let digest = hex::encode(&Sha256::digest(format!("{user}\0{provider}\0{region}"))[..4]);
    let head: String = readable.chars().take(63 - 9).collect();
    // Starts and ends alphanumeric whatever the input (the digest is hex).
    match head.trim_matches('-') {
        "" => format!("net-{digest}"),
        head => format!("{head}-{digest}"),
    }
}

/// The block of a (tenant, user) network inside 172.16.0.0/12: derived from a hash of the
/// pair, probing forward past blocks the tenant already uses. A /20 (4,096 addresses): its
/// first subnet, a /21, holds about 2,040 instances of the user in one zone (each cloud keeps a
/// few addresses per subnet), and a tenant has room for 256 such networks.
pub const NETWORK_PREFIX: u8 = 20;
pub fn derive_cidr<'a>(
    tenant: &str,
    user: &str,
    used: impl IntoIterator<Item = &'a str>,
) -> Option<Ipv4Net> {
    const BLOCKS: u32 = 1 << (NETWORK_PREFIX - 12); // /20 blocks in a /12
    let used: Vec<Ipv4Net> = used.into_iter().filter_map(|c| c.parse().ok()).collect();
    let digest = Sha256::digest(format!("{tenant}\0{user}"));
    let start = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % BLOCKS;
    let base = u32::from(Ipv4Addr::new(172, 16, 0, 0));
    (0..BLOCKS).find_map(|i| {
        let index = (start + i) % BLOCKS;
        let size_bits = 32 - u32::from(NETWORK_PREFIX);
        let net = Ipv4Net::new(Ipv4Addr::from(base + (index << size_bits)), NETWORK_PREFIX).ok()?;
        let overlaps = used
            .iter()
            .any(|u| u.contains(&net.network()) || net.contains(&u.network()));
        (!overlaps).then_some(net)
    })
}

/// The subnet (VSwitch) block inside a network's block: its first half (a /21 of a /20),
/// leaving room for the subnets of more zones.
pub fn subnet_cidr(network: &Ipv4Net) -> Ipv4Net {
    let prefix = (network.prefix_len() + 1).min(29);
    Ipv4Net::new(network.network(), prefix).unwrap_or(*network)
}

/// Why a resource with `resource_tags` may not be adopted by the object `uid` of `tenant`, if
/// it may not. Tenancy is a security boundary (the one rule of EcsInstance and UserNetwork adoption): another tenant's resource is never adopted, an
/// untagged one only where the CloudProvider allows it.
pub fn adoption_refusal(
    resource_tags: &Tags,
    uid: &str,
    tenant: &str,
    allow_untagged: bool,
) -> Option<String> {
    if let Some(owner) = resource_tags.get(tags::OBJECT_UID)
        && owner != uid
    {
        return Some(format!("it is managed by another object (UID {owner})"));
    }
    match resource_tags.get(tags::TENANT) {
        Some(t) if t == tenant => None,
        Some(t) => Some(format!(
            "it is tagged for tenant {t:?}, not this namespace's tenant {tenant:?}"
        )),
        None if allow_untagged => None,
        None => Some(format!(
            "it carries no {:?} tag for tenant {tenant:?} (the CloudProvider does not set allowUntaggedAdoption)",
            tags::TENANT
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_comes_from_the_namespace() {
        let labels = BTreeMap::from([(TENANT_LABEL.to_string(), "acme".to_string())]);
        assert_eq!(resolve_tenant("ns", Some(&labels), None).unwrap(), "acme");
        assert_eq!(
            resolve_tenant("ns", Some(&labels), Some("acme")).unwrap(),
            "acme"
        );
        assert_eq!(
            resolve_tenant("ns", Some(&labels), Some("evil"))
                .unwrap_err()
                .reason(),
            Reason::TenantMismatch
        );
        assert_eq!(
            resolve_tenant("ns", None, Some("acme"))
                .unwrap_err()
                .reason(),
            Reason::NamespaceWithoutTenant
        );
    }

    #[test]
    fn injected_tags_win_over_user_tags() {
        let user = BTreeMap::from([("team".to_string(), "ml".to_string())]);
        let t = resource_tags(&user, "acme", "u1", "uid-1");
        assert_eq!(t["team"], "ml");
        assert_eq!(t["tenantId"], "acme");
        assert_eq!(t["Owner"], "u1");
        assert_eq!(t["createdBy"], "multicloud-ecs");
        assert_eq!(t["multicloud-ecs/uid"], "uid-1");
        assert_ne!(network_key_tags("a", "u1"), network_key_tags("b", "u1"));
    }

    #[test]
    fn silent_names_are_valid_and_distinct() {
        let a = silent_network_name("User_1", "ALIYUN", "cn-hangzhou");
        assert!(a.starts_with("user-1-aliyun-cn-hangzhou-"), "{a}");
        assert!(
            a.len() <= 63
                && a.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
        assert_ne!(a, silent_network_name("user-1", "ALIYUN", "cn-hangzhou"));
        assert!(silent_network_name(&"x".repeat(80), "ALIYUN", "cn-hangzhou").len() <= 63);
        let odd = silent_network_name("-", "", "");
        assert!(odd.starts_with("net-") && !odd.ends_with('-'), "{odd}");
    }

    #[test]
    fn cidr_is_stable_inside_the_range_and_skips_used_blocks() {
        let range: Ipv4Net = "172.16.0.0/12".parse().unwrap();
        let first = derive_cidr("acme", "u1", []).unwrap();
        assert_eq!(first.prefix_len(), NETWORK_PREFIX);
        assert!(range.contains(&first));
        assert_eq!(derive_cidr("acme", "u1", []).unwrap(), first);
        let used = first.to_string();
        let second = derive_cidr("acme", "u1", [used.as_str()]).unwrap();
        assert_ne!(second, first);
        assert!(range.contains(&second));
        // A used /16 covering the derived block is skipped too.
        let wide = Ipv4Net::new(first.network(), 16)
            .unwrap()
            .trunc()
            .to_string();
        let third = derive_cidr("acme", "u1", [wide.as_str()]).unwrap();
        assert!(!wide.parse::<Ipv4Net>().unwrap().contains(&third.network()));
        assert_eq!(subnet_cidr(&first).prefix_len(), NETWORK_PREFIX + 1);
    }

    fn tagged(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_the_tenants_own_unowned_resources_are_adopted() {
        let own = tagged(&[(tags::TENANT, "acme")]);
        assert_eq!(adoption_refusal(&own, "u1", "acme", false), None);
        let theirs = tagged(&[(tags::TENANT, "globex")]);
        assert!(
            adoption_refusal(&theirs, "u1", "acme", true)
                .unwrap()
                .contains("globex")
        );
        let owned = tagged(&[(tags::TENANT, "acme"), (tags::OBJECT_UID, "u2")]);
        assert!(
            adoption_refusal(&owned, "u1", "acme", false)
                .unwrap()
                .contains("another object")
        );
        let mine = tagged(&[(tags::TENANT, "acme"), (tags::OBJECT_UID, "u1")]);
        assert_eq!(adoption_refusal(&mine, "u1", "acme", false), None);
        assert!(adoption_refusal(&Tags::new(), "u1", "acme", false).is_some());
        assert_eq!(adoption_refusal(&Tags::new(), "u1", "acme", true), None);
    }
}
