"""The text renderers against independent oracles: ElementTree for XML, json.dumps of whole documents for JSON."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from apreg.core.instance import InstanceInfo, Status
from apreg.eureka.views import XML_ILLEGAL, InstanceView, LeaseTimes
from apreg.eureka.render import (_encode_xml_name, instance_dict, render_application, render_applications,
                                 render_instance)

TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x2FF) | st.sampled_from("&<>\"'\r\n\t\x00_$:"), max_size=12)
KEYS = st.text(st.sampled_from("ab_$.-:9é"), min_size=1, max_size=6)

views = st.builds(
    lambda app, iid, host, meta, dc_meta, home, vip, status, action, sid: InstanceView(
        InstanceInfo(app=app, instance_id=iid, host_name=host, ip_addr="10.0.0.1", metadata=meta,
                     data_center_metadata=dc_meta, home_page_url=home, vip_address=vip, status=status, sid=sid),
        LeaseTimes(30, 90, 1, 2), action),
    st.sampled_from(["A", "B", "C&D"]), TEXT.filter(bool), TEXT.filter(bool),
    st.dictionaries(KEYS, TEXT, max_size=3), st.dictionaries(KEYS, TEXT, max_size=2), st.none() | TEXT,
    st.none() | TEXT, st.sampled_from(list(Status)), st.none() | st.sampled_from(["ADDED", "DELETED"]),
    st.none() | st.sampled_from(["na", "x<y"]))


def _xml_text(value: object) -> str:
    return XML_ILLEGAL.sub("\ufffd", str(value))


def _oracle_xml(parent: ET.Element, key: str, value: Any) -> None:
    """The pre-text-writer renderer: JSON-shaped values through ElementTree, metadata keys XStream-escaped."""
    if key == "metadata":
        elem = ET.SubElement(parent, "metadata")
        for k, v in value.items():
            if k == "@class":
                elem.set("class", _xml_text(v))
            elif k:
                ET.SubElement(elem, _encode_xml_name(k)).text = _xml_text(v)
        return
    child = ET.SubElement(parent, {"overriddenStatus": "overriddenstatus"}.get(key, key))
    if not isinstance(value, dict):
        child.text = _xml_text(value)
        return
    for k, v in value.items():
        if k.startswith("@"):
            child.set(k[1:], _xml_text(v))
        elif k == "$":
            child.text = _xml_text(v)
        else:
            _oracle_xml(child, k, v)


def _oracle_instance(view: InstanceView) -> ET.Element:
    root = ET.Element("instance")
    for key, value in instance_dict(view).items():
        _oracle_xml(root, key, value)
    return root


@given(views)
def test_instance_xml_is_what_elementtree_writes(view: InstanceView) -> None:
    assert render_instance(view, "xml") == ET.tostring(_oracle_instance(view), encoding="unicode").encode()


@given(st.lists(views, max_size=5), st.integers(1, 99), st.sampled_from(["", "UP_1_", "DOWN_1_UP_2_"]))
def test_documents_match_the_oracles(views_: list[InstanceView], version: int, hashcode: str) -> None:
    groups: dict[str, list[InstanceView]] = {}
    for view in views_:
        groups.setdefault(view.info.app, []).append(view)
    doc = {"applications": {"versions__delta": str(version), "apps__hashcode": hashcode, "application": [
        {"name": name, "instance": [instance_dict(v) for v in groups[name]]} for name in sorted(groups)]}}
    assert json.loads(render_applications(views_, version, hashcode, "json")) == doc
    root = ET.Element("applications")
    ET.SubElement(root, "versions__delta").text = str(version)
    ET.SubElement(root, "apps__hashcode").text = hashcode
    for name in sorted(groups):
        app = ET.SubElement(root, "application")
        ET.SubElement(app, "name").text = name
        app.extend(_oracle_instance(v) for v in groups[name])
    assert render_applications(views_, version, hashcode, "xml") == ET.tostring(root, encoding="unicode").encode()
    if groups:
        name = sorted(groups)[0]
        assert json.loads(render_application(name, groups[name], "json")) == {"application": doc["applications"][
            "application"][0]}
        app = root.find("application")
        assert app is not None
        assert render_application(name, groups[name], "xml") == ET.tostring(app, encoding="unicode").encode()
