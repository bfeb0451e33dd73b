//! The pod's volumes, set up before its containers start and torn down after
//! they stop, as the kubelet's volume manager does for the in-tree plugins:
//! emptyDir (on disk, or tmpfs for `medium: Memory`), hostPath, configMap,
//! secret (on tmpfs, never on disk), downwardAPI, projected (with bound
//! service-account tokens) and persistentVolumeClaim for hostPath and local
//! volumes. Each volume is a directory under `pods/<uid>/volumes/<plugin>/<name>`
//! (hostPath and PVs excepted) whose host path goes into the containers' mounts.
//!
//! Files of configMap, secret, downwardAPI and projected volumes are written
//! the way the kubelet's atomic writer does: into a fresh `..<time>` directory,
//! then the `..data` symlink is swapped to it, and each name is a symlink
//! through `..data`, so a running container never sees half an update.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod,
    Secret, Volume,
};
use kube::api::{Api, PostParams};
use serde_json::json;

use super::Shared;

/// Why a volume could not be set up; becomes a `FailedMount` event.
pub(crate) type VolumeError = String;

/// One file of a volume: relative path, bytes, mode.
type File = (String, Vec<u8>, u32);

pub(crate) fn volumes_dir(shared: &Shared, uid: &str) -> PathBuf {
    super::inputs::pod_dir(&shared.opts.root_dir, uid).join("volumes")
}

/// The ConfigMaps and Secrets the pod's volumes show, whose changes must
/// reach its running containers.
pub(crate) fn sources(pod: &Pod) -> (Vec<String>, Vec<String>) {
    let (mut cms, mut secrets) = (Vec::new(), Vec::new());
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        if let Some(c) = &v.config_map {
            cms.push(c.name.clone());
        }
        if let Some(name) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            secrets.push(name);
        }
        for source in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(c) = &source.config_map {
                cms.push(c.name.clone());
            }
            if let Some(s) = &source.secret {
                secrets.push(s.name.clone());
            }
        }
    }
    cms.sort();
    cms.dedup();
    secrets.sort();
    secrets.dedup();
    (cms, secrets)
}

/// When the pod's volumes must be written again: bound tokens are refreshed
/// at 80% of their lifetime, as the kubelet does.
pub(crate) fn refresh_after(pod: &Pod) -> Option<std::time::Duration> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .flat_map(|v| v.projected.iter().flat_map(|p| p.sources.iter().flatten()))
        .filter_map(|s| s.service_account_token.as_ref())
        .map(|t| t.expiration_seconds.unwrap_or(3607).max(600) as u64 * 8 / 10)
        .min()
        .map(std::time::Duration::from_secs)
}

/// Sets up every volume of the pod; returns each volume's host path. Run again
/// on an existing pod, it rewrites the files of configMap, secret, downwardAPI
/// and projected volumes in place.
pub(crate) async fn set_up(
    shared: &Shared,
    pod: &Pod,
) -> Result<BTreeMap<String, PathBuf>, VolumeError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let base = volumes_dir(shared, &uid);
    let mut out = BTreeMap::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let path = set_up_one(shared, pod, &base, v)
            .await
            .map_err(|e| format!("MountVolume.SetUp failed for volume {:?} : {e}", v.name))?;
        out.insert(v.name.clone(), path);
    }
    Ok(out)
}

/// Unmounts and removes every volume directory of the pod.
pub(crate) fn tear_down(shared: &Shared, uid: &str) -> std::io::Result<()> {
    let base = volumes_dir(shared, uid);
    for m in shared.mounter.mounts_under(&base) {
        shared.mounter.unmount(&m)?;
    }
    match std::fs::remove_dir_all(&base) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

async fn set_up_one(
    shared: &Shared,
    pod: &Pod,
    base: &Path,
    v: &Volume,
) -> Result<PathBuf, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let dir = |plugin: &str| base.join(format!("kubernetes.io~{plugin}")).join(&v.name);
    if let Some(e) = &v.empty_dir {
        let d = dir("empty-dir");
        if e.medium.as_deref() == Some("Memory") {
            let size = e
                .size_limit
                .as_ref()
                .and_then(|q| apimachinery::quantity::Quantity::parse(&q.0).ok())
                .map(|q| q.value().max(0) as u64);
            shared.mounter.mount_tmpfs(&d, size).map_err(io("tmpfs"))?;
        } else {
            std::fs::create_dir_all(&d).map_err(io("creating the directory"))?;
        }
        return Ok(d);
    }
    if let Some(h) = &v.host_path {
        let p = PathBuf::from(&h.path);
        check_host_path(&p, h.type_.as_deref().unwrap_or(""))?;
        return Ok(p);
    }
    if let Some(c) = &v.config_map {
        let d = dir("configmap");
        let cms: Api<ConfigMap> = Api::namespaced(shared.client.clone(), ns);
        let files = match cms.get_opt(&c.name).await.map_err(|e| e.to_string())? {
            Some(cm) => config_map_files(&cm, c.items.as_deref(), c.default_mode)?,
            None if c.optional == Some(true) => Vec::new(),
            None => return Err(format!("configmap {:?} not found", c.name)),
        };
        write_atomic(&d, &files).map_err(io("writing files"))?;
        return Ok(d);
    }
    if let Some(s) = &v.secret {
        let d = dir("secret");
        let name = s.secret_name.clone().unwrap_or_default();
        shared.mounter.mount_tmpfs(&d, None).map_err(io("tmpfs"))?;
        let secrets: Api<Secret> = Api::namespaced(shared.client.clone(), ns);
        let files = match secrets.get_opt(&name).await.map_err(|e| e.to_string())? {
            Some(secret) => secret_files(&secret, s.items.as_deref(), s.default_mode)?,
            None if s.optional == Some(true) => Vec::new(),
            None => return Err(format!("secret {name:?} not found")),
        };
        write_atomic(&d, &files).map_err(io("writing files"))?;
        return Ok(d);
    }
    if let Some(d_api) = &v.downward_api {
        let d = dir("downward-api");
        let files = downward_files(
            pod,
            d_api.items.as_deref().unwrap_or_default(),
            d_api.default_mode,
        )?;
        write_atomic(&d, &files).map_err(io("writing files"))?;
        return Ok(d);
    }
    if let Some(p) = &v.projected {
        let d = dir("projected");
        shared.mounter.mount_tmpfs(&d, None).map_err(io("tmpfs"))?;
        let mut files = Vec::new();
        for source in p.sources.iter().flatten() {
            if let Some(c) = &source.config_map {
                let cms: Api<ConfigMap> = Api::namespaced(shared.client.clone(), ns);
                match cms.get_opt(&c.name).await.map_err(|e| e.to_string())? {
                    Some(cm) => {
                        files.extend(config_map_files(&cm, c.items.as_deref(), p.default_mode)?)
                    }
                    None if c.optional == Some(true) => {}
                    None => return Err(format!("configmap {:?} not found", c.name)),
                }
            }
            if let Some(s) = &source.secret {
                let secrets: Api<Secret> = Api::namespaced(shared.client.clone(), ns);
                match secrets.get_opt(&s.name).await.map_err(|e| e.to_string())? {
                    Some(secret) => {
                        files.extend(secret_files(&secret, s.items.as_deref(), p.default_mode)?)
                    }
                    None if s.optional == Some(true) => {}
                    None => return Err(format!("secret {:?} not found", s.name)),
                }
            }
            if let Some(dapi) = &source.downward_api {
                files.extend(downward_files(
                    pod,
                    dapi.items.as_deref().unwrap_or_default(),
                    p.default_mode,
                )?);
            }
            if let Some(t) = &source.service_account_token {
                let token =
                    service_account_token(shared, pod, t.audience.clone(), t.expiration_seconds)
                        .await?;
                files.push((t.path.clone(), token.into_bytes(), mode(p.default_mode)));
            }
        }
        write_atomic(&d, &files).map_err(io("writing files"))?;
        return Ok(d);
    }
    if let Some(claim) = &v.persistent_volume_claim {
        return pv_path(shared, ns, &claim.claim_name).await;
    }
    Err(
        "volume type not supported by this node (supported: emptyDir, hostPath, configMap, \
         secret, downwardAPI, projected, persistentVolumeClaim of hostPath and local volumes)"
            .into(),
    )
}

fn mode(m: Option<i32>) -> u32 {
    m.map_or(0o644, |m| m as u32 & 0o777)
}

fn check_host_path(p: &Path, kind: &str) -> Result<(), String> {
    let meta = std::fs::metadata(p);
    let is = |f: fn(&std::fs::Metadata) -> bool| meta.as_ref().is_ok_and(f);
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => std::fs::create_dir_all(p).map_err(io("creating the directory")),
        "Directory" if is(|m| m.is_dir()) => Ok(()),
        "FileOrCreate" if is(|m| m.is_file()) => Ok(()),
        "FileOrCreate" => {
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(io("creating the directory"))?;
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map(|_| ())
                .map_err(io("creating the file"))
        }
        "File" if is(|m| m.is_file()) => Ok(()),
        "Socket" | "CharDevice" | "BlockDevice" if meta.is_ok() => Ok(()),
        other => Err(format!(
            "hostPath type check failed: {} is not a {other}",
            p.display()
        )),
    }
}

fn key_files(
    data: BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
    what: &str,
) -> Result<Vec<File>, String> {
    match items {
        None => Ok(data
            .into_iter()
            .map(|(k, v)| (k, v, mode(default_mode)))
            .collect()),
        Some(items) => items
            .iter()
            .map(|i| {
                let v = data
                    .get(&i.key)
                    .ok_or_else(|| format!("configuration key {:?} not found in {what}", i.key))?;
                Ok((i.path.clone(), v.clone(), mode(i.mode.or(default_mode))))
            })
            .collect(),
    }
}

fn config_map_files(
    cm: &ConfigMap,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
) -> Result<Vec<File>, String> {
    let mut data: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.iter().flatten() {
        data.insert(k.clone(), v.0.clone());
    }
    let name = format!(
        "ConfigMap {:?}",
        cm.metadata.name.as_deref().unwrap_or_default()
    );
    key_files(data, items, default_mode, &name)
}

fn secret_files(
    s: &Secret,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
) -> Result<Vec<File>, String> {
    let mut data: BTreeMap<String, Vec<u8>> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in s.string_data.iter().flatten() {
        data.insert(k.clone(), v.clone().into_bytes());
    }
    let name = format!(
        "Secret {:?}",
        s.metadata.name.as_deref().unwrap_or_default()
    );
    key_files(data, items, default_mode, &name)
}

/// Files of a downwardAPI volume: `metadata.*` fields; labels and
/// annotations as `key="value"` lines, sorted.
fn downward_files(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: Option<i32>,
) -> Result<Vec<File>, String> {
    let m = &pod.metadata;
    let pairs = |map: &Option<BTreeMap<String, String>>| {
        map.iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}\n", json!(v)))
            .collect::<String>()
    };
    items
        .iter()
        .map(|i| {
            let value = match i.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                Some("metadata.name") => m.name.clone().unwrap_or_default(),
                Some("metadata.namespace") => m.namespace.clone().unwrap_or_default(),
                Some("metadata.uid") => m.uid.clone().unwrap_or_default(),
                Some("metadata.labels") => pairs(&m.labels),
                Some("metadata.annotations") => pairs(&m.annotations),
                Some(other) => {
                    return Err(format!(
                        "downwardAPI field {other:?} is not supported in volumes"
                    ));
                }
                None => {
                    return Err(format!(
                        "downwardAPI item {:?}: resourceFieldRef is not supported in volumes yet",
                        i.path
                    ));
                }
            };
            Ok((
                i.path.clone(),
                value.into_bytes(),
                mode(i.mode.or(default_mode)),
            ))
        })
        .collect()
}

/// A token bound to the pod, from the TokenRequest API.
async fn service_account_token(
    shared: &Shared,
    pod: &Pod,
    audience: Option<String>,
    expiration: Option<i64>,
) -> Result<String, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let request: TokenRequest = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": audience.into_iter().collect::<Vec<_>>(),
            "expirationSeconds": expiration.unwrap_or(3607),
            "boundObjectRef": {
                "apiVersion": "v1", "kind": "Pod",
                "name": pod.metadata.name, "uid": pod.metadata.uid,
            },
        },
    }))
    .map_err(|e| e.to_string())?;
    let api: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(shared.client.clone(), ns);
    let reply: TokenRequest = api
        .create_subresource("token", &sa, &PostParams::default(), &request)
        .await
        .map_err(|e| format!("requesting a token for service account {sa:?}: {e}"))?;
    reply
        .status
        .map(|s| s.token)
        .ok_or_else(|| "the token request returned no token".into())
}

/// The host path of the PersistentVolume bound to a claim.
async fn pv_path(shared: &Shared, ns: &str, claim: &str) -> Result<PathBuf, String> {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(shared.client.clone(), ns);
    let pvc = pvcs
        .get_opt(claim)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("persistentvolumeclaim {claim:?} not found"))?;
    let pv_name = pvc
        .spec
        .and_then(|s| s.volume_name)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("persistentvolumeclaim {claim:?} is not bound"))?;
    let pvs: Api<PersistentVolume> = Api::all(shared.client.clone());
    let pv = pvs.get(&pv_name).await.map_err(|e| e.to_string())?;
    let spec = pv.spec.unwrap_or_default();
    if let Some(h) = spec.host_path {
        let p = PathBuf::from(&h.path);
        check_host_path(&p, h.type_.as_deref().unwrap_or("DirectoryOrCreate"))?;
        return Ok(p);
    }
    if let Some(l) = spec.local {
        return Ok(PathBuf::from(l.path));
    }
    Err(format!(
        "persistentvolume {pv_name:?}: only hostPath and local volumes are supported"
    ))
}

/// Writes `files` under `dir` as the kubelet's atomic writer does.
pub(crate) fn write_atomic(dir: &Path, files: &[File]) -> std::io::Result<()> {
    use std::os::unix::fs::{PermissionsExt, symlink};
    std::fs::create_dir_all(dir)?;
    let stamp = format!(
        "..{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let fresh = dir.join(&stamp);
    std::fs::create_dir(&fresh)?;
    for (path, bytes, mode) in files {
        let rel = Path::new(path);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(std::io::Error::other(format!("invalid path {path:?}")));
        }
        let target = fresh.join(rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, bytes)?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(*mode))?;
    }
    // Swap `..data` to the fresh directory in one rename.
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    symlink(&stamp, &tmp_link)?;
    let old = std::fs::read_link(dir.join("..data")).ok();
    std::fs::rename(&tmp_link, dir.join("..data"))?;
    // Top-level names point through `..data`.
    let tops: std::collections::BTreeSet<String> = files
        .iter()
        .filter_map(|(p, _, _)| p.split('/').next().map(str::to_owned))
        .collect();
    for top in &tops {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(Path::new("..data").join(top), &link)?;
        }
    }
    // Names gone from this version, and the old version.
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !tops.contains(&name) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    if let Some(old) = old.filter(|o| o.as_os_str() != stamp.as_str()) {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_swap_the_data_link_and_drop_old_names() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("v");
        write_atomic(
            &dir,
            &[
                ("a".into(), b"1".to_vec(), 0o644),
                ("sub/b".into(), b"2".to_vec(), 0o600),
            ],
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(dir.join("sub/b")).unwrap(), "2");
        write_atomic(&dir, &[("a".into(), b"3".to_vec(), 0o644)]).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "3");
        assert!(
            std::fs::symlink_metadata(dir.join("sub")).is_err(),
            "gone from the new version"
        );
        let versions = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with("..") && n != "..data"
            })
            .count();
        assert_eq!(versions, 1, "the old version is removed");
        assert!(write_atomic(&dir, &[("../x".into(), vec![], 0o644)]).is_err());
    }

    #[test]
    fn items_pick_keys_and_modes() {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "c"}, "data": {"k": "v", "other": "o"},
        }))
        .unwrap();
        let items: Vec<KeyToPath> =
            serde_json::from_value(json!([{"key": "k", "path": "dir/file", "mode": 0o400}]))
                .unwrap();
        let files = config_map_files(&cm, Some(&items), None).unwrap();
        assert_eq!(files, vec![("dir/file".into(), b"v".to_vec(), 0o400)]);
        let missing: Vec<KeyToPath> =
            serde_json::from_value(json!([{"key": "x", "path": "p"}])).unwrap();
        assert!(
            config_map_files(&cm, Some(&missing), None)
                .unwrap_err()
                .contains("\"x\"")
        );
        assert_eq!(config_map_files(&cm, None, Some(0o600)).unwrap().len(), 2);
    }

    #[test]
    fn downward_files_quote_labels() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "labels": {"app": "web", "tier": "a\"b"}},
        }))
        .unwrap();
        let items: Vec<DownwardAPIVolumeFile> = serde_json::from_value(json!([
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        ]))
        .unwrap();
        let files = downward_files(&pod, &items, None).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&files[0].1),
            "app=\"web\"\ntier=\"a\\\"b\"\n"
        );
        assert_eq!(files[1].1, b"p");
    }
}
