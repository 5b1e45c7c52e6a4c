//! Tests of the Azure fake: the token endpoint and its refusals, token expiry, ARM auth, the
//! `api-version` check, paging with `nextLink`, the instance view and the 429 knob.

use serde_json::Value;

use super::*;
use crate::aad::ARM_SCOPE;
use crate::testutil::http_with;

#[tokio::test]
async fn token_listing_paging_and_errors() {
    let f = spawn_azure(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        AzureOptions::default(),
    )
    .await
    .expect("fake");
    let o = AzureOptions::default();
    let list = format!(
        "/subscriptions/{}/providers/Microsoft.Compute/virtualMachines",
        o.subscription
    );
    let r = http_with(
        f.addr,
        "GET",
        &format!("{list}?api-version=2024-07-01"),
        &[],
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (401, Some("AuthenticationFailed"))
    );

    let token_path = format!("/{}/oauth2/v2.0/token", o.tenant);
    let form = |scope: &str| {
        format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope={scope}",
            o.client_id, o.client_secret
        )
    };
    let ct = [("Content-Type", "application/x-www-form-urlencoded")];
    let r = http_with(
        f.addr,
        "POST",
        &token_path,
        &ct,
        Some(&form("https%3A%2F%2Fmanagement.azure.com%2F")),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS1002012")
    );
    let r = http_with(
        f.addr,
        "POST",
        &token_path,
        &ct,
        Some(&form("https%3A%2F%2Fmanagement.azure.com%2F.default")),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(
        (v["token_type"].as_str(), v["expires_in"].as_u64()),
        (Some("Bearer"), Some(3599))
    );
    let auth = format!("Bearer {}", v["access_token"].as_str().unwrap());
    let h = [("Authorization", auth.as_str())];

    let r = http_with(f.addr, "GET", &list, &h, None).await.unwrap();
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (400, Some("MissingApiVersionParameter"))
    );
    let (mut path, mut vms) = (
        format!("{list}?api-version=2024-07-01&statusOnly=true"),
        Vec::new(),
    );
    loop {
        let r = http_with(f.addr, "GET", &path, &h, None).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        let page = v["value"].as_array().unwrap();
        assert!(page.len() <= PAGE);
        vms.extend(page.iter().cloned());
        match v["nextLink"].as_str() {
            Some(next) => path = next.strip_prefix(&f.base_url).unwrap().to_owned(),
            None => break,
        }
    }
    let truth = f.truth();
    assert_eq!(vms.len(), truth.vms.len());
    assert_eq!(truth.token_requests, 2);
    assert!(truth.vms.iter().any(|v| v.provisioning_state == "Failed"));
    let code = vms[0]
        .pointer("/properties/instanceView/statuses/1/code")
        .and_then(Value::as_str);
    assert_eq!(
        code,
        Some(format!("PowerState/{}", truth.vms[0].power_state).as_str())
    );
    assert_eq!(
        vms[0]["properties"]["hardwareProfile"]["vmSize"].as_str(),
        Some(truth.vms[0].vm_size.as_str())
    );
    let r = http_with(
        f.addr,
        "GET",
        &format!("{list}?api-version=2024-07-01"),
        &h,
        None,
    )
    .await
    .unwrap();
    assert!(
        r.json()["value"][0]["properties"]
            .get("instanceView")
            .is_none()
    );
    let bad = [("Authorization", "Bearer forged")];
    let r = http_with(
        f.addr,
        "GET",
        &format!("{list}?api-version=2024-07-01"),
        &bad,
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn token_endpoint_refuses_other_resources_and_tokens_expire() {
    let o = AzureOptions::default();
    let f = spawn_azure(SocketAddr::from(([127, 0, 0, 1], 0)), o.clone())
        .await
        .expect("fake");
    let token_path = format!("/{}/oauth2/v2.0/token", o.tenant);
    let ct = [("Content-Type", "application/x-www-form-urlencoded")];
    let ask = |scope: &str| {
        let body = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
            o.client_id,
            o.client_secret,
            form_urlencoded::byte_serialize(scope.as_bytes()).collect::<String>()
        );
        let (addr, path) = (f.addr, token_path.clone());
        async move {
            http_with(addr, "POST", &path, &ct, Some(&body))
                .await
                .unwrap()
        }
    };
    let r = ask("https://graph.microsoft.com/.default").await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("invalid_scope")),
        "{}",
        r.body
    );
    assert!(
        r.json()["error_description"]
            .as_str()
            .unwrap_or("")
            .starts_with("AADSTS70011: ")
    );

    f.set_token_lifetime_secs(0);
    let r = ask(ARM_SCOPE).await;
    assert_eq!(r.json()["expires_in"].as_u64(), Some(0));
    let auth = format!("Bearer {}", r.json()["access_token"].as_str().unwrap());
    let list = format!(
        "/subscriptions/{}/providers/Microsoft.Compute/virtualMachines?api-version=2024-07-01",
        o.subscription
    );
    let r = http_with(f.addr, "GET", &list, &[("Authorization", &auth)], None)
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (401, Some("ExpiredAuthenticationToken"))
    );
}
