//! Validation reports every mistake of a document, each naming node and field.

use medas_pipeline::{Pipeline, validate};
use medas_tools::Registry;
use serde_json::json;

fn pipeline(value: serde_json::Value) -> Pipeline {
    serde_json::from_value(value).unwrap()
}

#[test]
fn a_correct_pipeline_has_no_problems() {
    let p = pipeline(json!({
        "medas_pipeline": 1,
        "nodes": [
            {"id": "load", "tool": "io.read_image", "params": {"path": "ct.nii.gz"}},
            {"id": "float", "tool": "preprocess.cast", "params": {"type": "float32"}, "position": [120.0, 40.0]},
            {"id": "save", "tool": "io.write_image", "params": {"path": "out.nii.gz"}}
        ],
        "edges": [{"from": "load.image", "to": "float.image"}, {"from": "float.image", "to": "save.image"}]
    }));
    assert_eq!(validate(&p, Registry::global()), vec![]);
}

/// Five distinct mistakes give five problems: unknown tool, parameter of the wrong type,
/// an unconnected input, an edge from a port that does not exist, and a cycle.
#[test]
fn five_mistakes_give_five_problems_naming_node_and_field() {
    let p = pipeline(json!({
        "medas_pipeline": 1,
        "nodes": [
            {"id": "load", "tool": "io.read_image", "params": {"path": "ct.nii.gz"}},
            {"id": "smooth", "tool": "preprocess.gaussian_blur"},
            {"id": "a", "tool": "preprocess.cast", "params": {"type": 3}},
            {"id": "b", "tool": "preprocess.cast"},
            {"id": "c", "tool": "preprocess.cast"},
            {"id": "save", "tool": "io.write_image", "params": {"path": "out.nii"}}
        ],
        "edges": [
            {"from": "load.image", "to": "a.image"},
            {"from": "load.mask", "to": "b.image"},
            {"from": "b.image", "to": "c.image"},
            {"from": "c.image", "to": "b.image"}
        ]
    }));
    let problems = validate(&p, Registry::global());
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    let expected = [
        "node \"smooth\", tool: unknown tool \"preprocess.gaussian_blur\" (see `medas tools list`)",
        "node \"a\", parameter \"type\": expects one of the choices, got the number 3",
        "node \"load\", edge load.mask -> b.image: io.read_image has no output \"mask\" (outputs: image)",
        "node \"save\", input \"image\": is not connected",
        "node \"b\", edges: the nodes form a cycle: b -> c -> b",
    ];
    for e in expected {
        assert!(text.iter().any(|t| t == e), "missing {e:?} in {text:#?}");
    }
    assert_eq!(problems.len(), 5, "{text:#?}");
}

#[test]
fn type_mismatches_duplicates_and_double_connections() {
    let p = pipeline(json!({
        "medas_pipeline": 1,
        "nodes": [
            {"id": "load", "tool": "io.read_image", "params": {"path": "ct.nii.gz"}},
            {"id": "save", "tool": "io.write_image", "params": {"path": "out.nii"}},
            {"id": "again", "tool": "io.write_image", "params": {"path": "again.nii", "colour": "red"}},
            {"id": "load", "tool": "io.read_image", "params": {"path": "x"}}
        ],
        "edges": [
            {"from": "save.file", "to": "again.image"},
            {"from": "load.image", "to": "save.image"},
            {"from": "load.image", "to": "save.image"},
            {"from": "ghost.image", "to": "save.image"}
        ]
    }));
    let text: Vec<String> = validate(&p, Registry::global()).iter().map(|p| p.to_string()).collect();
    for e in [
        "node \"load\", id: the node id is used by two nodes",
        "node \"again\", parameter \"colour\": is not a parameter of this tool",
        "node \"again\", edge save.file -> again.image: file output save.file cannot feed image input again.image",
        "node \"save\", input \"image\": is connected more than once",
        "node \"save\", edge ghost.image -> save.image: there is no node \"ghost\"",
    ] {
        assert!(text.iter().any(|t| t == e), "missing {e:?} in {text:#?}");
    }
}

#[test]
fn documents_with_bad_syntax_or_version_are_refused_with_the_reason() {
    let dir = std::env::temp_dir().join(format!("medas-pipeline-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad_edge = dir.join("edge.json");
    std::fs::write(&bad_edge, r#"{"medas_pipeline": 1, "nodes": [], "edges": [{"from": "nodot", "to": "a.b"}]}"#).unwrap();
    let error = Pipeline::load(&bad_edge).unwrap_err().to_string();
    assert!(error.contains("\"nodot\" is not NODE.PORT") && error.contains("line 1"), "{error}");
    let future = dir.join("future.json");
    std::fs::write(&future, r#"{"medas_pipeline": 7, "nodes": []}"#).unwrap();
    let error = Pipeline::load(&future).unwrap_err().to_string();
    assert!(error.contains("format version 7, this build reads 1"), "{error}");
    let extra = dir.join("extra.json");
    std::fs::write(&extra, r#"{"medas_pipeline": 1, "nodes": [{"id": "a", "tool": "io.read_image", "param": {}}]}"#).unwrap();
    assert!(Pipeline::load(&extra).unwrap_err().to_string().contains("unknown field `param`"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Pipeline parameters: checked against their targets, required ones demanded at bind
/// time, `--set` values written into the nodes (direct node settings win).
#[test]
fn pipeline_parameters_bind_into_their_targets() {
    let document = json!({
        "medas_pipeline": 1,
        "params": {
            "ct": {"doc": "The CT.", "targets": ["load.path"]},
            "voxel_type": {"doc": "Output type.", "targets": ["float.type"], "default": "float64"}
        },
        "nodes": [
            {"id": "load", "tool": "io.read_image"},
            {"id": "float", "tool": "preprocess.cast"}
        ],
        "edges": [{"from": "load.image", "to": "float.image"}]
    });
    let p = pipeline(document.clone());
    assert_eq!(validate(&p, Registry::global()), vec![], "a required input is not a missing parameter");

    let problems = medas_pipeline::bind(&p, &[("colour".into(), json!("red")), ("ghost.x".into(), json!(1))]).unwrap_err();
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(text, [
        "pipeline, --set colour: no pipeline parameter \"colour\" (pipeline parameters: [\"ct\", \"voxel_type\"]; a node parameter is NODE.PARAM)",
        "pipeline, --set ghost.x: there is no node \"ghost\"",
        "pipeline, parameter \"ct\": is a required input; give it with --set ct=VALUE",
    ]);

    let bound = medas_pipeline::bind(&p, &[("ct".into(), json!("scan.nrrd"))]).unwrap();
    assert_eq!(bound.node("load").unwrap().params["path"], "scan.nrrd");
    assert_eq!(bound.node("float").unwrap().params["type"], "float64", "the default");
    let bound = medas_pipeline::bind(&p, &[("float.type".into(), json!("uint8")), ("ct".into(), json!("a.nii")), ("voxel_type".into(), json!("int16"))]).unwrap();
    assert_eq!(bound.node("float").unwrap().params["type"], "uint8", "a node setting wins over the pipeline parameter");

    let mut wrong = document;
    wrong["params"]["voxel_type"]["default"] = json!("complex");
    wrong["params"]["extra"] = json!({"targets": ["float.colour", "nowhere.x"]});
    let text: Vec<String> = validate(&pipeline(wrong), Registry::global()).iter().map(|p| p.to_string()).collect();
    assert_eq!(text.len(), 3, "{text:#?}");
    assert!(text[0].starts_with("node \"float\", parameter \"type\": \"complex\" is not one of"), "{text:#?}");
    assert!(text.contains(&"pipeline, parameter \"extra\": targets float.colour, but preprocess.cast has no parameter \"colour\"".to_string()));
    assert!(text.contains(&"pipeline, parameter \"extra\": targets nowhere.x, but there is no node \"nowhere\"".to_string()));
}
