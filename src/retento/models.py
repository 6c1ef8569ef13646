"""Every domain's tables, imported in one place so the metadata (and Alembic) sees all of them."""

from retento.apikeys import models as apikeys  # noqa: F401
from retento.assist import models as assist  # noqa: F401
from retento.catalog import models as catalog  # noqa: F401
from retento.core import bus  # noqa: F401
from retento.core.db.types import Base
from retento.customers import models as customers  # noqa: F401
from retento.history import models as history  # noqa: F401
from retento.inbox import models as inbox  # noqa: F401
from retento.journeys import models as journeys  # noqa: F401
from retento.loyalty import models as loyalty  # noqa: F401
from retento.messaging import models as messaging  # noqa: F401
from retento.orders import models as orders  # noqa: F401
from retento.sites import models as sites  # noqa: F401
from retento.tasks import models as tasks  # noqa: F401
from retento.triggers import models as triggers  # noqa: F401
from retento.users import models as users  # noqa: F401
from retento.webhooks import models as webhooks  # noqa: F401

metadata = Base.metadata
from retento.segments import models as segments  # noqa: F401, E402


def schema_filter(dialect: str):  # noqa: ANN201 - Alembic's include_object hook
    """Alembic's `include_object` for a database of `dialect`: an index declared for another database only
    (`Index(...).ddl_if(dialect=...)`, e.g. a GIN index) is not part of this one's schema."""

    def include(obj, name, type_, reflected, compare_to) -> bool:  # noqa: ANN001
        only = getattr(obj, "_ddl_if", None)
        return only is None or only.dialect is None or only.dialect == dialect

    return include
