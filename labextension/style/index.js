import './base.css';
import './evaluation.css';
