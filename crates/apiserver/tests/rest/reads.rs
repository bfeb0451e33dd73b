//! get and list: status codes, pagination, selectors, metadata-only answers.

use axum::http::{Method, StatusCode};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::harness::*;

#[tokio::test]
async fn create_get_conflicts_and_errors() {
    let h = harness().await;
    let (code, created) = h.post(CMS, cm("one")).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    assert!(
        created["metadata"]["uid"].is_string()
            && created["metadata"]["creationTimestamp"].is_string()
    );
    let (code, got) = h.get(&format!("{CMS}/one")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(got["metadata"]["resourceVersion"], rv.as_str());

    let (code, st) = h.post(CMS, cm("one")).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(st["reason"], "AlreadyExists");
    assert_eq!(st["details"]["name"], "one");

    let mut stale = got.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    let (code, st) = h.put(&format!("{CMS}/one"), stale).await;
    assert_eq!(code, StatusCode::CONFLICT, "{st}");
    assert_eq!(st["reason"], "Conflict");

    let mut fresh = got.clone();
    fresh["data"]["b"] = json!("2");
    let (code, updated) = h.put(&format!("{CMS}/one"), fresh).await;
    assert_eq!(code, StatusCode::OK, "{updated}");
    assert_ne!(updated["metadata"]["resourceVersion"], rv.as_str());

    let (code, st) = h.post(CMS, cm("Bad_Name")).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(st["reason"], "Invalid");
    assert_eq!(st["details"]["causes"][0]["field"], "metadata.name");

    let (code, st) = h.get(&format!("{CMS}/missing")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(st["message"], "configmaps \"missing\" not found");

    let resp = h
        .raw(
            Method::POST,
            CMS,
            Some(Bytes::from_static(b"{not json")),
            "application/json",
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    let (code, st) = h
        .post("/api/v1/namespaces/nowhere/configmaps", cm("x"))
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{st}");
    assert_eq!(st["message"], "namespaces \"nowhere\" not found");

    let (code, named) = h
        .post(CMS, json!({"metadata": {"generateName": "gen-"}}))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{named}");
    let name = named["metadata"]["name"].as_str().expect("name");
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
}

#[tokio::test]
async fn paginated_lists_are_one_snapshot_and_expire_after_compaction() {
    let h = harness().await;
    for i in 0..10 {
        assert_eq!(
            h.post(CMS, cm(&format!("cm-{i}"))).await.0,
            StatusCode::CREATED
        );
    }
    let (code, page1) = h.get(&format!("{CMS}?limit=4")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(page1["items"].as_array().map(Vec::len), Some(4));
    let token = page1["metadata"]["continue"]
        .as_str()
        .expect("continue")
        .to_string();
    // Changes after the first page must not show in later pages.
    let (_, cm9) = h.get(&format!("{CMS}/cm-9")).await;
    let mut changed = cm9.clone();
    changed["data"]["a"] = json!("changed");
    assert_eq!(
        h.put(&format!("{CMS}/cm-9"), changed).await.0,
        StatusCode::OK
    );
    assert_eq!(h.delete(&format!("{CMS}/cm-8")).await.0, StatusCode::OK);
    let mut names = Vec::new();
    let mut token = Some(token);
    let mut last_cm9 = Value::Null;
    while let Some(t) = token {
        let (code, page) = h.get(&format!("{CMS}?limit=4&continue={t}")).await;
        assert_eq!(code, StatusCode::OK, "{page}");
        for item in page["items"].as_array().expect("items") {
            names.push(item["metadata"]["name"].as_str().expect("name").to_string());
            if item["metadata"]["name"] == "cm-9" {
                last_cm9 = item.clone();
            }
        }
        token = page["metadata"]["continue"].as_str().map(str::to_string);
    }
    assert_eq!(names.len(), 6, "{names:?}");
    assert!(
        names.contains(&"cm-8".to_string()),
        "deleted after the snapshot, still listed"
    );
    assert_eq!(
        last_cm9["data"]["a"], "1",
        "the snapshot shows the old value"
    );
    assert_eq!(
        last_cm9["metadata"]["resourceVersion"],
        cm9["metadata"]["resourceVersion"]
    );

    let (_, page) = h.get(&format!("{CMS}?limit=2")).await;
    let t = page["metadata"]["continue"]
        .as_str()
        .expect("continue")
        .to_string();
    h.post(CMS, cm("after-the-page")).await;
    let rev = h.api.store.current_revision().await.expect("rev");
    h.api.store.compact(rev).await.expect("compact");
    let (code, st) = h.get(&format!("{CMS}?limit=2&continue={t}")).await;
    assert_eq!(code, StatusCode::GONE, "{st}");
    assert_eq!(st["reason"], "Expired");
}

#[tokio::test]
async fn selectors_filter_lists() {
    let h = harness().await;
    for (name, tier) in [("a", "web"), ("b", "db"), ("c", "web")] {
        let mut obj = cm(name);
        obj["metadata"]["labels"] = json!({"tier": tier});
        h.post(CMS, obj).await;
    }
    let (_, l) = h.get(&format!("{CMS}?labelSelector=tier%3Dweb")).await;
    let names: Vec<&str> = l["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["a", "c"]);
    let (_, l) = h
        .get(&format!("{CMS}?fieldSelector=metadata.name%3Db"))
        .await;
    assert_eq!(l["items"].as_array().map(Vec::len), Some(1));
    let (code, st) = h.get(&format!("{CMS}?fieldSelector=spec.bogus%3Dx")).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        st["message"]
            .as_str()
            .expect("msg")
            .contains("field label not supported: spec.bogus")
    );
    let (code, _) = h.get(&format!("{CMS}?labelSelector=tier%20in%20(")).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
}

/// What metadata informers (client-go's metadata client, kube-rs'
/// metadata_watcher, the garbage collector) ask for: only objects' metadata.
#[tokio::test]
async fn metadata_only_get_list_and_watch() {
    let h = harness().await;
    let (_, created) = h.post(CMS, cm("m1")).await;
    let read = |resp: axum::response::Response| async move {
        assert_eq!(resp.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        serde_json::from_slice::<Value>(&bytes).expect("JSON")
    };
    let one = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
    let list = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,\
                application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";

    let got = read(
        h.raw_accepting(
            Method::GET,
            &format!("{CMS}/m1"),
            None,
            "application/json",
            Some(one),
        )
        .await,
    )
    .await;
    assert_eq!(
        got,
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
               "metadata": created["metadata"]})
    );

    let listed = read(
        h.raw_accepting(Method::GET, CMS, None, "application/json", Some(list))
            .await,
    )
    .await;
    assert_eq!(listed["kind"], "PartialObjectMetadataList");
    assert_eq!(listed["apiVersion"], "meta.k8s.io/v1");
    assert!(
        listed["metadata"]["resourceVersion"].is_string(),
        "{listed}"
    );
    let items = listed["items"].as_array().expect("items");
    let m1 = items
        .iter()
        .find(|i| i["metadata"]["name"] == "m1")
        .expect("m1 listed");
    assert_eq!(m1["kind"], "PartialObjectMetadata");
    assert!(m1.get("data").is_none(), "{m1}");

    let events = watch_lines_accepting(
        &h,
        &format!("{CMS}?watch=true&resourceVersion=0"),
        1,
        Some(one),
    )
    .await;
    assert_eq!(events[0]["type"], "ADDED");
    let object = &events[0]["object"];
    assert_eq!(object["kind"], "PartialObjectMetadata", "{object}");
    assert!(object.get("data").is_none(), "{object}");
    assert!(object["metadata"]["name"].is_string());
}
