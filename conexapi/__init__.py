"""ConexAPI: marketplace sales become ERP documents, exactly once."""

__version__ = "0.1.0"
