//! `GET /beta/$metadata`: the CSDL document, generated from the model so it cannot drift from what
//! the service actually accepts and returns.

use std::fmt::Write;
use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::Response;

use crate::edm::ALL_ENUMS;
use crate::model::{AUTOPILOT_EVENT, EntitySchema, POLICY_STATUS_DETAIL};

pub fn response() -> Response {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let document = DOCUMENT.get_or_init(csdl);
    let mut response = Response::new(document.clone().into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml;charset=utf-8"),
    );
    response
        .headers_mut()
        .insert("OData-Version", HeaderValue::from_static("4.0"));
    response
}

fn entity_type(out: &mut String, schema: &EntitySchema, navigation: Option<(&str, &str)>) {
    let _ = writeln!(
        out,
        r#"      <EntityType Name="{}" BaseType="graph.entity">"#,
        schema.type_name
    );
    for property in schema.properties {
        let nullable = if property.nullable {
            ""
        } else {
            r#" Nullable="false""#
        };
        let _ = writeln!(
            out,
            r#"        <Property Name="{}" Type="{}"{nullable}/>"#,
            property.name,
            property.edm.csdl_name()
        );
    }
    if let Some((name, target)) = navigation {
        let _ = writeln!(
            out,
            r#"        <NavigationProperty Name="{name}" Type="Collection(graph.{target})" ContainsTarget="true"/>"#
        );
    }
    out.push_str("      </EntityType>\n");
}

fn csdl() -> String {
    let mut out = String::from(concat!(
        r#"<?xml version="1.0" encoding="utf-8"?>"#,
        "\n",
        r#"<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">"#,
        "\n  <edmx:DataServices>\n",
        r#"    <Schema Namespace="microsoft.graph" Alias="graph" xmlns="http://docs.oasis-open.org/odata/ns/edm">"#,
        "\n"
    ));
    for enum_type in ALL_ENUMS {
        let _ = writeln!(out, r#"      <EnumType Name="{}">"#, enum_type.name);
        for (member, value) in enum_type.members {
            let _ = writeln!(out, r#"        <Member Name="{member}" Value="{value}"/>"#);
        }
        out.push_str("      </EnumType>\n");
    }
    out.push_str(concat!(
        r#"      <EntityType Name="entity" Abstract="true">"#,
        "\n",
        r#"        <Key><PropertyRef Name="id"/></Key>"#,
        "\n",
        r#"        <Property Name="id" Type="Edm.String" Nullable="false"/>"#,
        "\n      </EntityType>\n"
    ));
    entity_type(
        &mut out,
        &AUTOPILOT_EVENT,
        Some((
            crate::model::DETAILS_NAVIGATION,
            POLICY_STATUS_DETAIL.type_name,
        )),
    );
    entity_type(&mut out, &POLICY_STATUS_DETAIL, None);
    out.push_str(concat!(
        r#"      <EntityType Name="deviceManagement" BaseType="graph.entity">"#,
        "\n"
    ));
    let _ = writeln!(
        out,
        r#"        <NavigationProperty Name="autopilotEvents" Type="Collection(graph.{})" ContainsTarget="true"/>"#,
        AUTOPILOT_EVENT.type_name
    );
    out.push_str("      </EntityType>\n");
    out.push_str(concat!(
        r#"      <EntityContainer Name="GraphService">"#,
        "\n",
        r#"        <Singleton Name="deviceManagement" Type="microsoft.graph.deviceManagement"/>"#,
        "\n      </EntityContainer>\n    </Schema>\n  </edmx:DataServices>\n</edmx:Edmx>\n"
    ));
    out
}
