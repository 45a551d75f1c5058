"""Shared pytest setup: never reach the Hugging Face Hub from tests."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
