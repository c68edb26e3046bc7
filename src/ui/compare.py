"""placeholder"""
from fastapi import APIRouter
from evalledger.ui.app import PageRoute

router = APIRouter(route_class=PageRoute, include_in_schema=False)
