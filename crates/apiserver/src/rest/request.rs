//! Turning a URL and method into what is being asked (Kubernetes' RequestInfo).

use axum::http::Method;

/// What a request is about, derived from its path, method and query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestInfo {
    pub is_resource_request: bool,
    pub verb: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub path: String,
}

/// Parses `/api/v1/...` and `/apis/GROUP/VERSION/...` paths; anything else is a
/// non-resource request (discovery, health, OpenAPI, metrics).
pub fn parse(method: &Method, path: &str, query_watch: bool) -> RequestInfo {
    let mut info = RequestInfo {
        path: path.to_string(),
        ..Default::default()
    };
    let trimmed = path.trim_matches('/');
    let mut parts: Vec<&str> = trimmed.split('/').filter(|p| !p.is_empty()).collect();
    info.verb = method.as_str().to_lowercase();
    let rest: Vec<&str> = match parts.first() {
        Some(&"api") if parts.len() >= 2 => {
            info.version = parts[1].to_string();
            parts.drain(..2);
            parts
        }
        Some(&"apis") if parts.len() >= 3 => {
            info.group = parts[1].to_string();
            info.version = parts[2].to_string();
            parts.drain(..3);
            parts
        }
        _ => return info,
    };
    let mut rest = rest;
    if rest.is_empty() {
        return info;
    }
    let mut legacy_watch = false;
    if rest[0] == "watch" {
        legacy_watch = true;
        rest.remove(0);
        if rest.is_empty() {
            return info;
        }
    }
    info.is_resource_request = true;
    if rest[0] == "namespaces" && rest.len() > 1 {
        info.namespace = rest[1].to_string();
        // `namespaces/NAME/status` and `/finalize` are subresources of the namespace.
        if rest.len() > 2 && rest[2] != "status" && rest[2] != "finalize" {
            rest.drain(..2);
        }
    }
    info.resource = rest[0].to_string();
    if let Some(name) = rest.get(1) {
        info.name = name.to_string();
    }
    if rest.len() > 2 {
        info.subresource = rest[2..].join("/");
    }
    if info.resource == "namespaces" && info.name.is_empty() {
        // The list of namespaces is cluster-wide even when reached through a name.
    } else if info.resource == "namespaces" {
        info.namespace = info.name.clone();
    }
    info.verb = match *method {
        Method::GET | Method::HEAD => {
            if legacy_watch || query_watch {
                "watch"
            } else if info.name.is_empty() {
                "list"
            } else {
                "get"
            }
        }
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => {
            if info.name.is_empty() {
                "deletecollection"
            } else {
                "delete"
            }
        }
        _ => "unknown",
    }
    .to_string();
    info
}

/// The one name a list or watch asks for through its field selector
/// (`metadata.name=NAME`, alone or with other terms), as Kubernetes'
/// RequestInfo takes it: authorization then sees the request as about that
/// object, so a kubelet's watch of one Secret is judged like a get of it. The
/// list itself filters by the same selector, so it returns nothing else.
pub fn selected_name(info: &RequestInfo, field_selector: Option<&str>) -> Option<String> {
    if !info.is_resource_request
        || !info.name.is_empty()
        || !matches!(info.verb.as_str(), "list" | "watch")
    {
        return None;
    }
    let selector = apimachinery::selectors::FieldSelector::parse(field_selector?).ok()?;
    let name = selector.requires_exact_match("metadata.name")?;
    // Kubernetes takes only what could be a name in a URL path.
    let valid = !matches!(name, "" | "." | "..") && !name.contains(['/', '%']);
    valid.then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_selector_names_the_object_of_a_list_or_watch() {
        let list = p(Method::GET, "/api/v1/namespaces/ns/secrets");
        let watch = parse(&Method::GET, "/api/v1/namespaces/ns/secrets", true);
        for info in [&list, &watch] {
            for (selector, want) in [
                ("metadata.name=db", Some("db")),
                ("metadata.name==db", Some("db")),
                ("type=Opaque,metadata.name=db", Some("db")),
                ("metadata.name!=db", None),
                ("type=Opaque", None),
                ("metadata.name=a/b", None),
                ("metadata.name=..", None),
                ("metadata.name", None),
            ] {
                assert_eq!(
                    selected_name(info, Some(selector)).as_deref(),
                    want,
                    "{} {selector}",
                    info.verb
                );
            }
            assert_eq!(selected_name(info, None), None);
        }
        // A get already names its object; other verbs are not about one object.
        let get = p(Method::GET, "/api/v1/namespaces/ns/secrets/db");
        assert_eq!(selected_name(&get, Some("metadata.name=other")), None);
        let collection = p(Method::DELETE, "/api/v1/namespaces/ns/secrets");
        assert_eq!(selected_name(&collection, Some("metadata.name=db")), None);
    }

    fn p(m: Method, path: &str) -> RequestInfo {
        parse(&m, path, false)
    }

    #[test]
    fn namespaced_object_and_subresource() {
        let i = p(Method::GET, "/api/v1/namespaces/default/pods/web/log");
        assert_eq!(
            (i.group.as_str(), i.resource.as_str(), i.namespace.as_str()),
            ("", "pods", "default")
        );
        assert_eq!(
            (i.name.as_str(), i.subresource.as_str(), i.verb.as_str()),
            ("web", "log", "get")
        );
    }

    #[test]
    fn namespaces_themselves() {
        let i = p(Method::GET, "/api/v1/namespaces");
        assert_eq!(
            (i.resource.as_str(), i.verb.as_str(), i.namespace.as_str()),
            ("namespaces", "list", "")
        );
        let i = p(Method::PUT, "/api/v1/namespaces/ns1/finalize");
        assert_eq!(
            (i.resource.as_str(), i.name.as_str(), i.subresource.as_str()),
            ("namespaces", "ns1", "finalize")
        );
        assert_eq!(i.namespace, "ns1");
        let i = p(Method::DELETE, "/api/v1/namespaces/ns1");
        assert_eq!(
            (i.resource.as_str(), i.name.as_str(), i.verb.as_str()),
            ("namespaces", "ns1", "delete")
        );
    }

    #[test]
    fn groups_watch_and_collections() {
        let i = p(Method::GET, "/apis/apps/v1/watch/namespaces/x/deployments");
        assert_eq!(
            (i.group.as_str(), i.verb.as_str(), i.namespace.as_str()),
            ("apps", "watch", "x")
        );
        let i = p(Method::DELETE, "/apis/apps/v1/namespaces/x/deployments");
        assert_eq!(i.verb, "deletecollection");
        let i = p(Method::GET, "/apis/apps/v1");
        assert!(!i.is_resource_request);
        let i = p(Method::GET, "/healthz");
        assert!(!i.is_resource_request);
    }
}
