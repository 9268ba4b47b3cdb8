//! Proof of delivery: images by magic bytes, size limits, generated names, party-only access.

use crate::helpers::*;

const JPEG: &[u8] =
    b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00 jpeg body";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR png body";
const WEBP: &[u8] = b"RIFF\x24\x00\x00\x00WEBPVP8 webp body";

impl World {
    async fn upload(
        &self,
        kind: &str,
        token: &str,
        order: &str,
        file: &[u8],
        file_name: &str,
    ) -> Reply {
        let (content_type, body) = multipart(&[
            ("order_id", None, None, order.as_bytes()),
            ("file", Some(file_name), Some("image/png"), file),
        ]);
        self.app
            .raw(
                "POST",
                &format!("/api/uploads/{kind}"),
                Some(token),
                Some(&content_type),
                body,
            )
            .await
    }

    fn stored_files(&self) -> Vec<String> {
        match std::fs::read_dir(self.app.uploads.path().join("files")) {
            Ok(dir) => dir
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect(),
            Err(_) => vec![],
        }
    }
}

fn generated(url: &str, order: &str, ext: &str) -> bool {
    let Some(name) = url.strip_prefix("/api/uploads/") else {
        return false;
    };
    let Some(rest) = name.strip_prefix(&format!("{order}-")) else {
        return false;
    };
    let Some((random, e)) = rest.split_once('.') else {
        return false;
    };
    random.len() == 32 && random.bytes().all(|b| b.is_ascii_hexdigit()) && e == ext
}

#[tokio::test]
async fn each_image_type_is_stored_attached_and_served_to_the_parties() {
    let w = World::new().await;
    let order = w.order_in("out_for_delivery").await;
    for (kind, bytes, ext, mime) in [
        ("proof", JPEG, "jpg", "image/jpeg"),
        ("signature", PNG, "png", "image/png"),
        ("proof", WEBP, "webp", "image/webp"),
    ] {
        // The declared name and type say PNG every time: only the content counts.
        let r = w
            .upload(kind, &w.driver.who.token, &order, bytes, "photo.png")
            .await;
        r.expect(201);
        let url = r.json["url"].as_str().unwrap().to_owned();
        assert!(generated(&url, &order, ext), "{url}");
        assert_eq!(r.json["content_type"], mime);
        assert_eq!(r.json["bytes"], bytes.len());
        let stored = w.stored_order(&order).await;
        let field = if kind == "proof" {
            stored.proof_photo_url
        } else {
            stored.signature_url
        };
        assert_eq!(field.as_deref(), Some(url.as_str()));
        for token in [
            &w.driver.who.token,
            &w.vendor.owner.token,
            &w.customer.token,
            &w.admin.token,
        ] {
            let r = w.app.get(&url, token).await;
            r.expect(200);
            assert_eq!(r.header("content-type"), Some(mime));
            assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
            assert_eq!(r.bytes, bytes);
        }
        for token in [
            &w.other_customer.token,
            &w.other_vendor.owner.token,
            &w.other_driver.who.token,
            &w.second_driver.who.token,
        ] {
            w.app.get(&url, token).await.expect(404);
        }
        w.app.public(&url).await.expect(401);
    }
    assert_eq!(w.stored_files().len(), 3);
}

#[tokio::test]
async fn proof_uploads_satisfy_the_delivery_rule() {
    let w = World::new().await;
    w.require_proofs().await;
    let order = w.order_in("out_for_delivery").await;
    w.upload("proof", &w.driver.who.token, &order, JPEG, "a.jpg")
        .await
        .expect(201);
    let r = w.set_status(&order, &w.driver.who.token, "delivered").await;
    r.expect(409);
    assert!(r.json["detail"].as_str().unwrap().contains("signature"));
    w.upload("signature", &w.driver.who.token, &order, PNG, "s.png")
        .await
        .expect(201);
    w.set_status(&order, &w.driver.who.token, "delivered")
        .await
        .expect(200);
    // After delivery, no more uploads; the files stay readable by the parties.
    let r = w
        .upload("proof", &w.driver.who.token, &order, JPEG, "a.jpg")
        .await;
    assert!(matches!(r.status.as_u16(), 404 | 409), "{}", r.text);
    let url = w.stored_order(&order).await.proof_photo_url.unwrap();
    w.app.get(&url, &w.driver.who.token).await.expect(200);
    w.app.get(&url, &w.customer.token).await.expect(200);
}

#[tokio::test]
async fn disguised_files_are_refused_and_never_stored() {
    let w = World::new().await;
    let order = w.order_in("picked_up").await;
    for (bytes, name) in [
        (
            &b"<html><script>alert(document.cookie)</script></html>"[..],
            "evil.png",
        ),
        (
            &b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>"[..],
            "evil.jpg",
        ),
        (&b"GIF89a\x01\x00\x01\x00"[..], "anim.gif"),
        (&b""[..], "empty.png"),
        (&b"\x89PN"[..], "short.png"),
    ] {
        let r = w
            .upload("proof", &w.driver.who.token, &order, bytes, name)
            .await;
        r.expect(415);
    }
    assert!(w.stored_files().is_empty());
    assert_eq!(w.stored_order(&order).await.proof_photo_url, None);
}

#[tokio::test]
async fn the_size_limit_is_exact() {
    let app = App::with_config(medex_http::HttpConfig {
        max_upload_bytes: 1000,
        ..Default::default()
    })
    .await;
    let w = World::with_app(app).await;
    let order = w.order_in("picked_up").await;
    let file = |size: usize| {
        let mut f = PNG.to_vec();
        f.resize(size, b'x');
        f
    };
    w.upload("proof", &w.driver.who.token, &order, &file(1000), "a.png")
        .await
        .expect(201);
    let r = w
        .upload("proof", &w.driver.who.token, &order, &file(1001), "a.png")
        .await;
    r.expect(413);
    // Far over the limit: refused while reading, still 413 with the JSON body.
    let r = w
        .upload(
            "proof",
            &w.driver.who.token,
            &order,
            &file(200_000),
            "a.png",
        )
        .await;
    r.expect(413);
    assert_eq!(w.stored_files().len(), 1);
}

#[tokio::test]
async fn client_file_names_never_reach_the_file_system() {
    let w = World::new().await;
    let order = w.order_in("picked_up").await;
    for name in [
        "../../etc/passwd",
        "/etc/passwd",
        "a%00.jpg",
        "..\\..\\boot.ini",
        ".htaccess",
        "C:\\Windows\\win.ini",
    ] {
        let r = w
            .upload("proof", &w.driver.who.token, &order, JPEG, name)
            .await;
        r.expect(201);
        assert!(
            generated(r.json["url"].as_str().unwrap(), &order, "jpg"),
            "{name}: {}",
            r.text
        );
    }
    // A NUL cannot even travel in a part header: the body is refused as malformed.
    let r = w
        .upload("proof", &w.driver.who.token, &order, JPEG, "a\0.jpg")
        .await;
    r.expect(400);
    let files = w.stored_files();
    assert_eq!(files.len(), 6);
    assert!(
        files
            .iter()
            .all(|f| f.starts_with(&order) && f.ends_with(".jpg")),
        "{files:?}"
    );
    // Nothing was written next to the upload directory either.
    let beside: Vec<_> = std::fs::read_dir(w.app.uploads.path()).unwrap().collect();
    assert_eq!(beside.len(), 1);
    // Reading with crafted names: 404 before the file system is touched.
    for name in [
        "..%2F..%2Fetc%2Fpasswd",
        "%2Fetc%2Fpasswd",
        "a%00.jpg",
        "..",
        "files",
        &format!("{order}-..%2F..%2Fx.jpg"),
        &format!("{}.jpg", order),
    ] {
        let r = w
            .app
            .get(&format!("/api/uploads/{name}"), &w.admin.token)
            .await;
        assert!(
            matches!(r.status.as_u16(), 404),
            "{name}: {} {}",
            r.status,
            r.text
        );
        r.assert_error_format();
    }
}

#[tokio::test]
async fn only_the_assigned_driver_or_its_pharmacy_uploads() {
    let w = World::new().await;
    let order = w.order_in("out_for_delivery").await;
    let table = [
        (&w.other_driver.who.token, 404),
        (&w.second_driver.who.token, 404),
        (&w.other_vendor.owner.token, 404),
        (&w.other_customer.token, 404),
        (&w.customer.token, 403),
        (&w.vendor.owner.token, 201),
        (&w.driver.who.token, 201),
    ];
    for (token, expected) in table {
        let r = w.upload("proof", token, &order, JPEG, "a.jpg").await;
        r.expect(expected);
    }
    assert_eq!(w.stored_files().len(), 2);
    // Not on its way yet: 409.
    let pending = w.order().await;
    let r = w
        .upload("proof", &w.vendor.owner.token, &pending, JPEG, "a.jpg")
        .await;
    r.expect(409);
    assert_eq!(r.code(), "not_in_delivery");
    assert_eq!(w.stored_files().len(), 2);
}

#[tokio::test]
async fn malformed_uploads_are_client_errors() {
    let w = World::new().await;
    let order = w.order_in("picked_up").await;
    let token = Some(w.driver.who.token.as_str());
    let url = "/api/uploads/proof";
    // Not multipart.
    w.app
        .raw("POST", url, token, Some("application/json"), "{}")
        .await
        .expect(415);
    w.app
        .raw("POST", url, token, Some("image/png"), PNG)
        .await
        .expect(415);
    w.app.raw("POST", url, token, None, PNG).await.expect(415);
    // Missing parts, bad id.
    let (ct, body) = multipart(&[("file", Some("a.png"), None, PNG)]);
    w.app
        .raw("POST", url, token, Some(&ct), body)
        .await
        .expect(422);
    let (ct, body) = multipart(&[("order_id", None, None, order.as_bytes())]);
    w.app
        .raw("POST", url, token, Some(&ct), body)
        .await
        .expect(422);
    let (ct, body) = multipart(&[
        ("order_id", None, None, b"../../etc"),
        ("file", None, None, PNG),
    ]);
    w.app
        .raw("POST", url, token, Some(&ct), body)
        .await
        .expect(422);
    // Broken framing.
    let post_multipart = |content_type: &'static str, body: &'static str| {
        w.app.raw("POST", url, token, Some(content_type), body)
    };
    post_multipart("multipart/form-data; boundary=xyz", "--xyz\r\ngarbage")
        .await
        .expect(400);
    post_multipart("multipart/form-data", "no boundary")
        .await
        .expect(400);
    assert!(w.stored_files().is_empty());
}
