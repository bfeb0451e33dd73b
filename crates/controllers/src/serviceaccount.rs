//! Service accounts: a `default` ServiceAccount and the `kube-root-ca.crt`
//! ConfigMap in every namespace, and tokens filled into Secrets of type
//! `kubernetes.io/service-account-token` (Kubernetes' serviceaccount,
//! root-ca-cert-publisher and tokens controllers).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use crate::Shared;
use crate::driver::{self, Queue};
use crate::error::{Context, Result, is_already_exists, is_namespace_terminating, is_not_found};

const DEFAULT_ACCOUNT: &str = "default";
const ROOT_CA: &str = "kube-root-ca.crt";
const TOKEN_TYPE: &str = "kubernetes.io/service-account-token";
const ACCOUNT_NAME: &str = "kubernetes.io/service-account.name";
const ACCOUNT_UID: &str = "kubernetes.io/service-account.uid";
/// Legacy token Secrets do not expire; a century is as close as a TokenRequest gets.
const TOKEN_SECONDS: i64 = 100 * 365 * 24 * 3600;

pub async fn run(ctx: Shared) {
    let accounts = Queue::new(&ctx.namespaces)
        .related(&ctx.service_accounts, |sa| {
            namespace_of(
                sa.metadata.namespace.as_deref(),
                sa.name_any() == DEFAULT_ACCOUNT,
            )
        })
        .related(&ctx.root_ca_maps, |cm| {
            namespace_of(cm.metadata.namespace.as_deref(), true)
        });
    let secrets = ctx.token_secrets.clone();
    let tokens = Queue::new(&ctx.token_secrets).related(&ctx.service_accounts, move |sa| {
        // A changed or deleted account may invalidate its token Secrets.
        let name = sa.name_any();
        secrets
            .in_namespace(sa.metadata.namespace.as_deref().unwrap_or_default())
            .iter()
            .filter(|s| s.annotations().get(ACCOUNT_NAME) == Some(&name))
            .map(|s| ObjectRef::from_obj(s.as_ref()))
            .collect()
    });
    let workers = ctx.opts.workers;
    tokio::join!(
        driver::run(
            "serviceaccount",
            accounts,
            ctx.clone(),
            reconciler!(reconcile_namespace),
            workers
        ),
        driver::run(
            "serviceaccount-token",
            tokens,
            ctx.clone(),
            reconciler!(reconcile_token),
            workers
        ),
    );
}

fn namespace_of(ns: Option<&str>, relevant: bool) -> Vec<ObjectRef<Namespace>> {
    match ns {
        Some(ns) if relevant => vec![ObjectRef::new(ns)],
        _ => Vec::new(),
    }
}

async fn reconcile_namespace(ns: Arc<Namespace>, ctx: Shared) -> Result<Action> {
    if ns.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    if ctx
        .service_accounts
        .get(Some(&name), DEFAULT_ACCOUNT)
        .is_none()
    {
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(DEFAULT_ACCOUNT.into()),
                namespace: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        match ctx
            .api::<ServiceAccount>(&name)
            .create(&PostParams::default(), &sa)
            .await
        {
            Ok(_) => tracing::debug!(namespace = %name, "created the default service account"),
            Err(e) if is_already_exists(&e) || is_namespace_terminating(&e) => {}
            Err(e) => {
                return Err(e).ctx(|| format!("creating the default service account in {name}"));
            }
        }
    }
    if let Some(pem) = &ctx.opts.root_ca_pem {
        publish_root_ca(&ctx, &name, pem).await?;
    }
    Ok(Action::await_change())
}

async fn publish_root_ca(ctx: &Shared, ns: &str, pem: &str) -> Result<()> {
    let data = BTreeMap::from([("ca.crt".to_string(), pem.to_string())]);
    let api = ctx.api::<ConfigMap>(ns);
    match ctx.root_ca_maps.get(Some(ns), ROOT_CA) {
        Some(cm) if cm.data.as_ref() == Some(&data) => Ok(()),
        Some(cm) => {
            let mut updated = (*cm).clone();
            updated.data = Some(data);
            match api.replace(ROOT_CA, &PostParams::default(), &updated).await {
                Ok(_) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                Err(e) => Err(e).ctx(|| format!("updating {ROOT_CA} in {ns}")),
            }
        }
        None => {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(ROOT_CA.into()),
                    namespace: Some(ns.into()),
                    annotations: Some(BTreeMap::from([(
                        "kubernetes.io/description".to_string(),
                        "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.".to_string(),
                    )])),
                    ..Default::default()
                },
                data: Some(data),
                ..Default::default()
            };
            match api.create(&PostParams::default(), &cm).await {
                Ok(_) => Ok(()),
                Err(e) if is_already_exists(&e) || is_namespace_terminating(&e) => Ok(()),
                Err(e) => Err(e).ctx(|| format!("creating {ROOT_CA} in {ns}")),
            }
        }
    }
}

async fn reconcile_token(secret: Arc<Secret>, ctx: Shared) -> Result<Action> {
    if secret.type_.as_deref() != Some(TOKEN_TYPE) || secret.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = secret.namespace().unwrap_or_default();
    let name = secret.name_any();
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    let Some(account_name) = annotations.get(ACCOUNT_NAME).cloned() else {
        return Ok(Action::await_change());
    };
    let api = ctx.api::<Secret>(&ns);
    let account = match ctx.service_accounts.get(Some(&ns), &account_name) {
        Some(a) => a,
        None => {
            // The cache may lag a just-created account: ask before deleting.
            match ctx.api::<ServiceAccount>(&ns).get_opt(&account_name).await {
                Ok(Some(a)) => Arc::new(a),
                Ok(None) => return delete_token(&api, &secret).await,
                Err(e) => {
                    return Err(e).ctx(|| format!("reading service account {ns}/{account_name}"));
                }
            }
        }
    };
    let account_uid = account.uid().unwrap_or_default();
    if annotations
        .get(ACCOUNT_UID)
        .is_some_and(|u| *u != account_uid)
    {
        // The token belonged to an earlier account of the same name.
        return delete_token(&api, &secret).await;
    }
    let data = secret.data.clone().unwrap_or_default();
    let has_token = data.get("token").is_some_and(|t| !t.0.is_empty());
    if has_token && annotations.contains_key(ACCOUNT_UID) {
        return Ok(Action::await_change());
    }
    let token = if has_token {
        data.get("token").cloned().unwrap_or_default()
    } else {
        request_token(&ctx, &ns, &account_name).await?
    };
    let mut updated = (*secret).clone();
    let mut new_data = data;
    new_data.insert("token".into(), token);
    new_data.insert("namespace".into(), ByteString(ns.clone().into_bytes()));
    if let Some(pem) = &ctx.opts.root_ca_pem {
        new_data.insert("ca.crt".into(), ByteString(pem.clone().into_bytes()));
    }
    updated.data = Some(new_data);
    updated
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(ACCOUNT_UID.into(), account_uid);
    match api.replace(&name, &PostParams::default(), &updated).await {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if is_not_found(&e) => Ok(Action::await_change()),
        Err(e) => Err(e).ctx(|| format!("filling token secret {ns}/{name}")),
    }
}

async fn request_token(ctx: &Shared, ns: &str, account: &str) -> Result<ByteString> {
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(TOKEN_SECONDS),
            bound_object_ref: None,
        },
        ..Default::default()
    };
    let resp: TokenRequest = ctx
        .api::<ServiceAccount>(ns)
        .create_subresource("token", account, &PostParams::default(), &req)
        .await
        .ctx(|| format!("requesting a token for {ns}/{account}"))?;
    let token = resp.status.map(|s| s.token).unwrap_or_default();
    Ok(ByteString(token.into_bytes()))
}

async fn delete_token(api: &Api<Secret>, secret: &Secret) -> Result<Action> {
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: secret.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&secret.name_any(), &dp).await {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if is_not_found(&e) => Ok(Action::await_change()),
        Err(e) => Err(e).ctx(|| format!("deleting stale token secret {}", secret.name_any())),
    }
}
