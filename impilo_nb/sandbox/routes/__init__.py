"""The sandbox API's operations under /api/v3, one APIRouter per resource.

Each module's ``router(context)`` builds its router for one app; ``app.create_app`` assembles them.
"""
