"""The node ids of the tests that failed in a pytest JUnit XML report, one per line
(scripts/test.sh runs them once more)."""
import sys
import xml.etree.ElementTree as ElementTree

for case in ElementTree.parse(sys.argv[1]).getroot().iter("testcase"):
    if case.find("failure") is not None or case.find("error") is not None:
        path = case.get("classname", "").replace(".", "/")
        print(f"{path}.py::{case.get('name')}")
