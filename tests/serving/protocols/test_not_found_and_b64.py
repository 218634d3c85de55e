"""A name or version that is not served lists what is; a bare base64 string gets the b64 wrapper hint."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

from kerasdrop.serving.errors import ServingError
from kerasdrop.serving.models.images import check_encoded_images
from tests.serving.conftest import rest, running_server


@pytest.fixture(scope="module")
def server(exported_repo):
    repo, _ = exported_repo
    with running_server(repo=repo) as server:
        yield server


def test_an_unknown_model_lists_the_served_ones(server):
    status, body = rest(server, "GET", "/v1/models/lenet")
    assert status == 404 and body["error"] == "Could not find any versions of model lenet (served: lenet5)"
    status, body = rest(server, "POST", "/v1/models/lenet:predict", {"inputs": [[0.0]]})
    assert status == 404 and body["error"] == "Servable not found for request: Latest(lenet) (served: lenet5)"


def test_an_unknown_version_lists_the_served_versions(server):
    status, body = rest(server, "POST", "/v1/models/lenet5/versions/7:predict", {"inputs": [[0.0]]})
    assert (
        status == 404
        and body["error"] == "Servable not found for request: Specific(lenet5, 7) (lenet5 serves version 1)"
    )


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), dtype="uint8"), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_base64_string_without_its_wrapper_gets_the_wrapper_hint():
    text = base64.b64encode(_png()).decode()
    with pytest.raises(ServingError, match=r'wrap it as \{"b64": "<the base64 text>"\}'):
        check_encoded_images("serving_bytes", {"images_bytes": np.array([text], dtype=object)}, None)


def test_other_text_gets_no_wrapper_hint():
    with pytest.raises(ServingError) as raised:
        check_encoded_images("serving_bytes", {"images_bytes": np.array(["hello world"], dtype=object)}, None)
    assert "b64" not in raised.value.message
